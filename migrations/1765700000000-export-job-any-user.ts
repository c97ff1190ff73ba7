import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * An export job's owner is any account that may export, an identity provider's (`oidc:<sub>`)
 * too, as on break-glass grants and audit rows: a uuid column turned such a kick-off into a 500.
 */
export class ExportJobAnyUser1765700000000 implements MigrationInterface {
  name = 'ExportJobAnyUser1765700000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE "export_job" ALTER COLUMN "user_id" TYPE text`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    // Jobs of external accounts cannot be kept in a uuid column.
    await queryRunner.query(`DELETE FROM "export_job" WHERE "user_id" !~ '^[0-9a-f-]{36}$'`);
    await queryRunner.query(
      `ALTER TABLE "export_job" ALTER COLUMN "user_id" TYPE uuid USING "user_id"::uuid`,
    );
  }
}
