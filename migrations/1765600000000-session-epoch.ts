import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * An account's session epoch, moved on whenever its sessions end (a disable, an MFA reset, a
 * new password), and the epoch each refresh token and authorization code was issued in. Revoking
 * the account's refresh tokens alone missed one a sign-in inserted just after (its checks done
 * before the reset), and a code approved a moment before the reset; a token or code of an
 * earlier epoch is now refused whenever it comes. Existing rows are all of epoch 0.
 */
export class SessionEpoch1765600000000 implements MigrationInterface {
  name = 'SessionEpoch1765600000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    for (const table of ['app_user', 'refresh_token', 'authorization_code']) {
      await queryRunner.query(
        `ALTER TABLE "${table}" ADD COLUMN "session_epoch" integer NOT NULL DEFAULT 0`,
      );
    }
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    for (const table of ['authorization_code', 'refresh_token', 'app_user']) {
      await queryRunner.query(`ALTER TABLE "${table}" DROP COLUMN "session_epoch"`);
    }
  }
}
