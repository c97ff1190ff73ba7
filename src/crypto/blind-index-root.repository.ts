import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';

/** The blind-index root the stored data is keyed by: its id and check value, never the key. */
export interface RecordedRoot {
  keyId: string;
  checkValue: string;
  recordedAt: Date;
}

/** The one row of blind_index_root. */
@Injectable()
export class BlindIndexRootRepository {
  constructor(@InjectDataSource() private readonly dataSource: DataSource) {}

  /** The root recorded, or undefined where none is (or the migration has not run yet). */
  async recorded(): Promise<RecordedRoot | undefined> {
    const [table] = await this.dataSource.query<{ present: boolean }[]>(
      `SELECT to_regclass('blind_index_root') IS NOT NULL AS present`,
    );
    if (!table?.present) {
      return undefined;
    }
    const rows = await this.dataSource.query<RecordedRoot[]>(
      `SELECT "key_id" AS "keyId", "check_value" AS "checkValue", "recorded_at" AS "recordedAt"
         FROM "blind_index_root"`,
    );
    return rows[0];
  }

  /** Records the root unless one is (another instance starting at once may have won). */
  async recordIfNone(keyId: string, checkValue: string): Promise<void> {
    await this.dataSource.query(
      `INSERT INTO "blind_index_root" ("key_id", "check_value") VALUES ($1, $2)
       ON CONFLICT ("singleton") DO NOTHING`,
      [keyId, checkValue],
    );
  }
}
