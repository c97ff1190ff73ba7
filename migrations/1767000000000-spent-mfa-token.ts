import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The MFA tokens already exchanged for a session (POST /auth/login/mfa), kept until they expire,
 * as backend_client_assertion keeps spent client assertions: an MFA token works once, on every
 * instance, rather than for a second session with a later code within its five minutes. A
 * user's expired rows go at their next MFA sign-in (the primary key's prefix finds them).
 */
export class SpentMfaToken1767000000000 implements MigrationInterface {
  name = 'SpentMfaToken1767000000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`
      CREATE TABLE "spent_mfa_token" (
        "user_id" uuid NOT NULL,
        "jti" text NOT NULL,
        "expires_at" timestamptz NOT NULL,
        CONSTRAINT "pk_spent_mfa_token" PRIMARY KEY ("user_id", "jti"),
        CONSTRAINT "fk_spent_mfa_token_user" FOREIGN KEY ("user_id")
          REFERENCES "app_user" ("id") ON DELETE CASCADE
      )`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP TABLE "spent_mfa_token"`);
  }
}
