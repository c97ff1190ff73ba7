import type { MigrationInterface, QueryRunner } from 'typeorm';

const ENVELOPE = `'^cv1\\.k[0-9a-f]{12}\\.[A-Za-z0-9_-]{16}\\.[A-Za-z0-9_-]*\\.[A-Za-z0-9_-]{22}$'`;

export class CreateHl7Outbox1764700000000 implements MigrationInterface {
  name = 'CreateHl7Outbox1764700000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`
      CREATE TABLE "hl7_outbox" (
        "id" uuid NOT NULL,
        "seq" bigserial NOT NULL,
        "destination" text NOT NULL,
        "created_at" timestamptz NOT NULL,
        "message_type" text NOT NULL,
        "control_id" text NOT NULL,
        "resource_type" text NOT NULL,
        "resource_id" text NOT NULL,
        "version_id" integer NOT NULL,
        "message" text NOT NULL,
        "status" text NOT NULL,
        "attempts" integer NOT NULL DEFAULT 0,
        "next_attempt_at" timestamptz NOT NULL,
        "ack_code" text,
        "last_error" text,
        "sent_at" timestamptz,
        CONSTRAINT "pk_hl7_outbox" PRIMARY KEY ("id"),
        CONSTRAINT "chk_hl7_outbox_message_envelope" CHECK ("message" ~ ${ENVELOPE}),
        CONSTRAINT "chk_hl7_outbox_status" CHECK ("status" IN ('pending', 'sent', 'dead'))
      )`);
    await queryRunner.query(
      `CREATE INDEX "idx_hl7_outbox_pending" ON "hl7_outbox" ("destination", "seq")
         WHERE "status" = 'pending'`,
    );
    await queryRunner.query(
      `CREATE INDEX "idx_hl7_outbox_status" ON "hl7_outbox" ("status", "seq")`,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP TABLE "hl7_outbox"`);
  }
}
