import type { MigrationInterface, QueryRunner } from 'typeorm';

const ENVELOPE = `'^cv1\\.k[0-9a-f]{12}\\.[A-Za-z0-9_-]{16}\\.[A-Za-z0-9_-]*\\.[A-Za-z0-9_-]{22}$'`;

export class CreateBreakGlass1764200000000 implements MigrationInterface {
  name = 'CreateBreakGlass1764200000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`
      CREATE TABLE "break_glass_grant" (
        "id" uuid NOT NULL,
        "user_id" text NOT NULL,
        "username" text NOT NULL,
        "patient_id" text NOT NULL,
        "reason" text NOT NULL,
        "created_at" timestamptz NOT NULL,
        "expires_at" timestamptz NOT NULL,
        CONSTRAINT "pk_break_glass_grant" PRIMARY KEY ("id"),
        CONSTRAINT "chk_break_glass_grant_reason_envelope" CHECK ("reason" ~ ${ENVELOPE})
      )`);
    await queryRunner.query(
      `CREATE INDEX "idx_break_glass_grant_user_patient" ON "break_glass_grant" ("user_id", "patient_id")`,
    );
    await queryRunner.query(`
      CREATE TABLE "break_glass_use" (
        "id" bigint GENERATED ALWAYS AS IDENTITY NOT NULL,
        "grant_id" uuid NOT NULL,
        "resource_type" text NOT NULL,
        "resource_id" text NOT NULL,
        "interaction" text NOT NULL,
        "at" timestamptz NOT NULL,
        CONSTRAINT "pk_break_glass_use" PRIMARY KEY ("id")
      )`);
    await queryRunner.query(
      `CREATE INDEX "idx_break_glass_use_grant" ON "break_glass_use" ("grant_id")`,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP TABLE "break_glass_use"`);
    await queryRunner.query(`DROP TABLE "break_glass_grant"`);
  }
}
