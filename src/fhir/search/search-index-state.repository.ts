import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';

/** The one row of search_index_state: which version of indexing built the stored rows. */
@Injectable()
export class SearchIndexStateRepository {
  constructor(@InjectDataSource() private readonly dataSource: DataSource) {}

  /** The version recorded, or undefined where none is (rows written before it was kept). */
  async builtVersion(): Promise<number | undefined> {
    const rows: { version: number }[] = await this.dataSource.query(
      `SELECT "version" FROM "search_index_state"`,
    );
    return rows[0]?.version;
  }

  /** Whether any resource (any version, deleted or not) is stored: only those have index rows. */
  async holdsResources(): Promise<boolean> {
    const rows: unknown[] = await this.dataSource.query(`SELECT 1 FROM "resource" LIMIT 1`);
    return rows.length > 0;
  }

  /** Records `version`; never lowers it (an instance of an older version still running). */
  async record(version: number): Promise<void> {
    await this.dataSource.query(
      `INSERT INTO "search_index_state" ("version") VALUES ($1)
       ON CONFLICT ("singleton") DO UPDATE
         SET "version" = GREATEST("search_index_state"."version", EXCLUDED."version"),
             "built_at" = now()`,
      [version],
    );
  }
}
