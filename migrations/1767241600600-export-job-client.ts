import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * An export job belongs to the client that started it too, when its token was issued to one (a
 * SMART backend client, or an app): two systems acting as one account each see their own jobs.
 * Jobs from before this migration have no client, so only the account's own tokens (no client)
 * open them; a client's finished export of before is gone for it, as at its retention.
 */
export class ExportJobClient1767241600600 implements MigrationInterface {
  name = 'ExportJobClient1767241600600';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE "export_job" ADD COLUMN "client_id" text`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE "export_job" DROP COLUMN "client_id"`);
  }
}
