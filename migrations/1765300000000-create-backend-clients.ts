import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * SMART Backend Services: systems (a data warehouse, a payer, a registry) that get tokens with
 * the client_credentials grant, authenticating with a JWT signed by a private key they hold.
 * A client acts as one CareVault account (its roles, its audit identity) and holds its public
 * keys (a JWKS, or the URL where it publishes one) and the widest scope it may be granted. The assertions' ids are kept until they expire,
 * so that a captured assertion cannot be replayed.
 */
export class CreateBackendClients1765300000000 implements MigrationInterface {
  name = 'CreateBackendClients1765300000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`
      CREATE TABLE "backend_client" (
        "id" uuid NOT NULL,
        "name" text NOT NULL,
        "user_id" uuid NOT NULL,
        "jwks" jsonb,
        "jwks_url" text,
        "scope" text NOT NULL,
        "active" boolean NOT NULL,
        "created_at" timestamptz NOT NULL,
        CONSTRAINT "pk_backend_client" PRIMARY KEY ("id"),
        CONSTRAINT "uq_backend_client_name" UNIQUE ("name"),
        CONSTRAINT "fk_backend_client_user" FOREIGN KEY ("user_id") REFERENCES "app_user" ("id"),
        CONSTRAINT "chk_backend_client_keys" CHECK (("jwks" IS NULL) <> ("jwks_url" IS NULL))
      )`);
    await queryRunner.query(`
      CREATE TABLE "backend_client_assertion" (
        "client_id" uuid NOT NULL,
        "jti" text NOT NULL,
        "expires_at" timestamptz NOT NULL,
        CONSTRAINT "pk_backend_client_assertion" PRIMARY KEY ("client_id", "jti"),
        CONSTRAINT "fk_backend_client_assertion_client" FOREIGN KEY ("client_id")
          REFERENCES "backend_client" ("id") ON DELETE CASCADE
      )`);
    await queryRunner.query(
      `CREATE INDEX "idx_backend_client_assertion_expires" ON "backend_client_assertion" ("expires_at")`,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP TABLE "backend_client_assertion"`);
    await queryRunner.query(`DROP TABLE "backend_client"`);
  }
}
