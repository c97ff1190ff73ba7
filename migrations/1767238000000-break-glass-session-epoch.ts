import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * A break-glass grant belongs to the session epoch it was opened in: a disable, a new password or
 * an MFA reset ends it with the account's sessions. Grants opened before this migration are taken
 * as of the first epoch (0): those of an account whose sessions have ended since stop at once,
 * which at worst asks for the glass to be broken again.
 */
export class BreakGlassSessionEpoch1767238000000 implements MigrationInterface {
  name = 'BreakGlassSessionEpoch1767238000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(
      `ALTER TABLE "break_glass_grant" ADD COLUMN "session_epoch" integer NOT NULL DEFAULT 0`,
    );
    // Every grant from now on states its epoch: none is taken as 0 by being left out.
    await queryRunner.query(
      `ALTER TABLE "break_glass_grant" ALTER COLUMN "session_epoch" DROP DEFAULT`,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE "break_glass_grant" DROP COLUMN "session_epoch"`);
  }
}
