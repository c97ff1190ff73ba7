import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * An export job remembers the SMART scopes and the patient of the token that started it, so that
 * only a token of the same scopes and patient sees its status and files, or deletes it: a
 * patient-scoped token of the user no longer opens the user's population export. `scope` holds
 * the resource scopes as SMART v2 spells them, sorted and space-separated; NULL for a token
 * without scopes (the roles' rights), which is what every job written before this was taken for.
 */
export class ExportJobToken1766200000000 implements MigrationInterface {
  name = 'ExportJobToken1766200000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE "export_job" ADD COLUMN "scope" text`);
    await queryRunner.query(`ALTER TABLE "export_job" ADD COLUMN "patient" text`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    // Without the columns, any token of the user would open a scoped token's job.
    await queryRunner.query(
      `DELETE FROM "export_job" WHERE "scope" IS NOT NULL OR "patient" IS NOT NULL`,
    );
    await queryRunner.query(`ALTER TABLE "export_job" DROP COLUMN "patient"`);
    await queryRunner.query(`ALTER TABLE "export_job" DROP COLUMN "scope"`);
  }
}
