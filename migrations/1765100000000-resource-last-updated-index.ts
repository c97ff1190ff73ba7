import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Live resources of a type in last_updated order: `_lastUpdated=gt…` (what a client syncing
 * changes asks) seeks to its range instead of checking every resource of the type, and
 * `_sort=-_lastUpdated` reads its page off the index. At 240,000 Observations the newest page
 * took 100 ms, sorted in full; with the index 7 to 10 ms.
 */
export class ResourceLastUpdatedIndex1765100000000 implements MigrationInterface {
  name = 'ResourceLastUpdatedIndex1765100000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(
      `CREATE INDEX "idx_resource_last_updated" ON "resource" ("resource_type", "last_updated", "id")
         WHERE NOT "deleted"`,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP INDEX "idx_resource_last_updated"`);
  }
}
