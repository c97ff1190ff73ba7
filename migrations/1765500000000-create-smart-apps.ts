import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * SMART App Launch without an identity provider: registered apps (their exact redirect URIs and
 * the widest scope they may be granted), the one-time authorization codes CareVault's own
 * authorization endpoint issues (stored as SHA-256 hashes, with the PKCE challenge they must be
 * redeemed with, and the OpenID Connect nonce its id_token repeats), and, on a refresh token,
 * the app grant it continues (scope, patient, app), so that a refreshed token is never wider
 * than the one the user approved. An account may name its FHIR identity (`Practitioner/…`),
 * which an app granted `fhirUser` learns.
 */
export class CreateSmartApps1765500000000 implements MigrationInterface {
  name = 'CreateSmartApps1765500000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`
      CREATE TABLE "smart_app" (
        "id" uuid NOT NULL,
        "name" text NOT NULL,
        "redirect_uris" text[] NOT NULL,
        "scope" text NOT NULL,
        "active" boolean NOT NULL,
        "created_at" timestamptz NOT NULL,
        CONSTRAINT "pk_smart_app" PRIMARY KEY ("id"),
        CONSTRAINT "uq_smart_app_name" UNIQUE ("name"),
        CONSTRAINT "chk_smart_app_redirect_uris" CHECK (cardinality("redirect_uris") > 0)
      )`);
    await queryRunner.query(`
      CREATE TABLE "authorization_code" (
        "code_hash" text NOT NULL,
        "app_id" uuid NOT NULL,
        "user_id" uuid NOT NULL,
        "redirect_uri" text NOT NULL,
        "scope" text NOT NULL,
        "patient" text,
        "encounter" text,
        "code_challenge" text NOT NULL,
        "nonce" text,
        "amr" text[] NOT NULL,
        "auth_time" timestamptz NOT NULL,
        "expires_at" timestamptz NOT NULL,
        "used_at" timestamptz,
        "family_id" uuid,
        CONSTRAINT "pk_authorization_code" PRIMARY KEY ("code_hash"),
        CONSTRAINT "fk_authorization_code_app" FOREIGN KEY ("app_id")
          REFERENCES "smart_app" ("id") ON DELETE CASCADE,
        CONSTRAINT "fk_authorization_code_user" FOREIGN KEY ("user_id") REFERENCES "app_user" ("id")
      )`);
    await queryRunner.query(
      `CREATE INDEX "idx_authorization_code_expires" ON "authorization_code" ("expires_at")`,
    );
    await queryRunner.query(`ALTER TABLE "app_user" ADD COLUMN "fhir_user" text`);
    await queryRunner.query(`
      ALTER TABLE "refresh_token"
        ADD COLUMN "scope" text,
        ADD COLUMN "patient" text,
        ADD COLUMN "app_id" uuid`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`
      ALTER TABLE "refresh_token" DROP COLUMN "app_id", DROP COLUMN "patient", DROP COLUMN "scope"`);
    await queryRunner.query(`ALTER TABLE "app_user" DROP COLUMN "fhir_user"`);
    await queryRunner.query(`DROP TABLE "authorization_code"`);
    await queryRunner.query(`DROP TABLE "smart_app"`);
  }
}
