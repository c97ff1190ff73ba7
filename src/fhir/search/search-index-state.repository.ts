import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';

/** What built the stored index: a version of indexing, for PUBLIC_URL's host or none (null). */
export interface IndexBuild {
  version: number;
  publicHost: string | null;
}

/** The one row of search_index_state: which version of indexing built the stored rows. */
@Injectable()
export class SearchIndexStateRepository {
  constructor(@InjectDataSource() private readonly dataSource: DataSource) {}

  /** What was recorded, or undefined where nothing is (rows written before it was kept). */
  async built(): Promise<IndexBuild | undefined> {
    const rows: { version: number; public_host: string | null }[] = await this.dataSource.query(
      `SELECT "version", "public_host" FROM "search_index_state"`,
    );
    const row = rows[0];
    return row && { version: row.version, publicHost: row.public_host };
  }

  /** Whether any resource (any version, deleted or not) is stored: only those have index rows. */
  async holdsResources(): Promise<boolean> {
    const rows: unknown[] = await this.dataSource.query(`SELECT 1 FROM "resource" LIMIT 1`);
    return rows.length > 0;
  }

  /** Records a build; never lowers the version (an instance of an older version still running). */
  async record(build: IndexBuild): Promise<void> {
    await this.dataSource.query(
      `INSERT INTO "search_index_state" ("version", "public_host") VALUES ($1, $2)
       ON CONFLICT ("singleton") DO UPDATE
         SET "version" = GREATEST("search_index_state"."version", EXCLUDED."version"),
             "public_host" = EXCLUDED."public_host",
             "built_at" = now()`,
      [build.version, build.publicHost],
    );
  }
}
