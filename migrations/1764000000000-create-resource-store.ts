import type { MigrationInterface, QueryRunner } from 'typeorm';

// Kept literal rather than imported: a migration must not change when application code does.
const ENVELOPE = `'^cv1\\.k[0-9a-f]{12}\\.[A-Za-z0-9_-]{16}\\.[A-Za-z0-9_-]*\\.[A-Za-z0-9_-]{22}$'`;

export class CreateResourceStore1764000000000 implements MigrationInterface {
  name = 'CreateResourceStore1764000000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`
      CREATE TABLE "resource" (
        "resource_type" text NOT NULL,
        "id" text NOT NULL,
        "version_id" integer NOT NULL,
        "last_updated" timestamptz NOT NULL,
        "deleted" boolean NOT NULL,
        "content" text,
        CONSTRAINT "pk_resource" PRIMARY KEY ("resource_type", "id"),
        CONSTRAINT "chk_resource_content_envelope" CHECK ("content" ~ ${ENVELOPE}),
        CONSTRAINT "chk_resource_content_present" CHECK ("deleted" OR "content" IS NOT NULL)
      )`);
    await queryRunner.query(`
      CREATE TABLE "resource_history" (
        "resource_type" text NOT NULL,
        "id" text NOT NULL,
        "version_id" integer NOT NULL,
        "last_updated" timestamptz NOT NULL,
        "deleted" boolean NOT NULL,
        "content" text,
        CONSTRAINT "pk_resource_history" PRIMARY KEY ("resource_type", "id", "version_id"),
        CONSTRAINT "chk_resource_history_content_envelope" CHECK ("content" ~ ${ENVELOPE}),
        CONSTRAINT "chk_resource_history_content_present" CHECK ("deleted" OR "content" IS NOT NULL)
      )`);
    // Type-level history lists by time; a btree serves both directions.
    await queryRunner.query(
      `CREATE INDEX "idx_resource_history_type_updated" ON "resource_history" ("resource_type", "last_updated")`,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP TABLE "resource_history"`);
    await queryRunner.query(`DROP TABLE "resource"`);
  }
}
