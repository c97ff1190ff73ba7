import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * An export job belongs to the session epoch of the token that started it: after a disable, a
 * new password or an MFA reset, the account's new tokens do not open what was exported before.
 * Jobs from before this migration are taken as of the first epoch (0): one of an account whose
 * sessions have ended since is no longer its owner's, and is removed at its retention as usual.
 */
export class ExportJobSessionEpoch1767239000000 implements MigrationInterface {
  name = 'ExportJobSessionEpoch1767239000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(
      `ALTER TABLE "export_job" ADD COLUMN "session_epoch" integer NOT NULL DEFAULT 0`,
    );
    // Every job from now on states its epoch: none is taken as 0 by being left out.
    await queryRunner.query(`ALTER TABLE "export_job" ALTER COLUMN "session_epoch" DROP DEFAULT`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE "export_job" DROP COLUMN "session_epoch"`);
  }
}
