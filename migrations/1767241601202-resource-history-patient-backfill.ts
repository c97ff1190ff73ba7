import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * resource_history_patient for the versions stored before it: a version's own patients are in
 * its encrypted content, which SQL cannot read, so every version of a live record is filed
 * under the patients its record names now, the records a patient-scoped history listed until
 * then (the check of each version read still leaves out one that named another patient).
 */
export class ResourceHistoryPatientBackfill1767241601202 implements MigrationInterface {
  name = 'ResourceHistoryPatientBackfill1767241601202';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`
      INSERT INTO "resource_history_patient" (patient_id, resource_type, last_updated, id, version_id)
      SELECT DISTINCT s.target_id, h.resource_type, h.last_updated, h.id, h.version_id
        FROM search_reference s
        JOIN resource_history h ON h.resource_type = s.resource_type AND h.id = s.resource_id
       WHERE s.target_type = 'Patient' AND NOT h.deleted
      ON CONFLICT DO NOTHING`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`TRUNCATE "resource_history_patient"`);
  }
}
