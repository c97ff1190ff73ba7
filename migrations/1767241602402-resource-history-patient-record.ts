import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The rows of resource_history_patient by record and version: search:reindex files each
 * version of a record again and deletes the rows of its versions that name a patient they do
 * not (the backfill's, see 1767241601202), which the key, led by the patient, cannot find
 * without reading the whole table for every batch.
 */
export class ResourceHistoryPatientRecord1767241602402 implements MigrationInterface {
  name = 'ResourceHistoryPatientRecord1767241602402';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(
      `CREATE INDEX "idx_resource_history_patient_record" ON "resource_history_patient" ("resource_type", "id", "version_id")`,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP INDEX "idx_resource_history_patient_record"`);
  }
}
