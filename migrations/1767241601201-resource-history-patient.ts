import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Each version's patients (those its references name, as the search index holds them when the
 * version is written), in time order per patient and type: a patient-scoped token's history of
 * a type or of the system reads a page of the patient's versions off this key and stops at the
 * page, where it read every one of the patient's records and their versions for every page
 * (60,000 versions and 120,000 index rows for a page of 50 of a patient with 60,000
 * Observations). Written in the statement that writes the version's index rows. Filled for the
 * versions already stored by the next migration.
 */
export class ResourceHistoryPatient1767241601201 implements MigrationInterface {
  name = 'ResourceHistoryPatient1767241601201';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`
      CREATE TABLE "resource_history_patient" (
        "patient_id" text NOT NULL,
        "resource_type" text NOT NULL,
        "last_updated" timestamptz NOT NULL,
        "id" text NOT NULL,
        "version_id" integer NOT NULL,
        CONSTRAINT "pk_resource_history_patient"
          PRIMARY KEY ("patient_id", "resource_type", "last_updated", "id", "version_id")
      )`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP TABLE "resource_history_patient"`);
  }
}
