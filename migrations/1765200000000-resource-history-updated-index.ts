import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Every version in last_updated order, for the system history (`GET /fhir/_history`): its
 * newest page, what changed `_since` an instant, and the page after a cursor (its sort keys,
 * hence the other columns) are read off the index instead of sorting every version of every
 * type.
 */
export class ResourceHistoryUpdatedIndex1765200000000 implements MigrationInterface {
  name = 'ResourceHistoryUpdatedIndex1765200000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(
      `CREATE INDEX "idx_resource_history_updated" ON "resource_history" ("last_updated", "resource_type", "id", "version_id")`,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP INDEX "idx_resource_history_updated"`);
  }
}
