import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Versions in last_updated order with their sort keys, for the histories of a type and of the
 * system, which page by keyset (`_cursor`): each page, and what changed `_since` an instant,
 * is read off an index instead of sorting every version. A type's index gains the keys after
 * last_updated; the system's starts with last_updated, as it spans every type.
 */
export class ResourceHistoryKeysetIndexes1765200000000 implements MigrationInterface {
  name = 'ResourceHistoryKeysetIndexes1765200000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP INDEX "idx_resource_history_type_updated"`);
    await queryRunner.query(
      `CREATE INDEX "idx_resource_history_type_updated" ON "resource_history" ("resource_type", "last_updated", "id", "version_id")`,
    );
    await queryRunner.query(
      `CREATE INDEX "idx_resource_history_updated" ON "resource_history" ("last_updated", "resource_type", "id", "version_id")`,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP INDEX "idx_resource_history_updated"`);
    await queryRunner.query(`DROP INDEX "idx_resource_history_type_updated"`);
    await queryRunner.query(
      `CREATE INDEX "idx_resource_history_type_updated" ON "resource_history" ("resource_type", "last_updated")`,
    );
  }
}
