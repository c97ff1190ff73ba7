import type { MigrationInterface, QueryRunner } from 'typeorm';

const ENVELOPE = `'^cv1\\.k[0-9a-f]{12}\\.[A-Za-z0-9_-]{16}\\.[A-Za-z0-9_-]*\\.[A-Za-z0-9_-]{22}$'`;

export class CreateUsers1764100000000 implements MigrationInterface {
  name = 'CreateUsers1764100000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`
      CREATE TABLE "app_user" (
        "id" uuid NOT NULL,
        "username" text NOT NULL,
        "password_hash" text NOT NULL,
        "roles" text array NOT NULL,
        "active" boolean NOT NULL,
        "failed_attempts" integer NOT NULL,
        "locked_until" timestamptz,
        "totp_secret" text,
        "mfa_enabled" boolean NOT NULL,
        "totp_last_step" bigint,
        "created_at" timestamptz NOT NULL,
        CONSTRAINT "pk_app_user" PRIMARY KEY ("id"),
        CONSTRAINT "uq_app_user_username" UNIQUE ("username"),
        CONSTRAINT "chk_app_user_totp_secret_envelope" CHECK ("totp_secret" ~ ${ENVELOPE})
      )`);
    await queryRunner.query(`
      CREATE TABLE "refresh_token" (
        "id" uuid NOT NULL,
        "token_hash" text NOT NULL,
        "family_id" uuid NOT NULL,
        "user_id" uuid NOT NULL,
        "amr" text array NOT NULL,
        "auth_time" timestamptz NOT NULL,
        "created_at" timestamptz NOT NULL,
        "expires_at" timestamptz NOT NULL,
        "absolute_expires_at" timestamptz NOT NULL,
        "revoked_at" timestamptz,
        CONSTRAINT "pk_refresh_token" PRIMARY KEY ("id"),
        CONSTRAINT "uq_refresh_token_token_hash" UNIQUE ("token_hash")
      )`);
    await queryRunner.query(
      `CREATE INDEX "idx_refresh_token_family" ON "refresh_token" ("family_id")`,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP TABLE "refresh_token"`);
    await queryRunner.query(`DROP TABLE "app_user"`);
  }
}
