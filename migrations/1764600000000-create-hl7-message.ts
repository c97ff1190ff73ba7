import type { MigrationInterface, QueryRunner } from 'typeorm';

const ENVELOPE = `'^cv1\\.k[0-9a-f]{12}\\.[A-Za-z0-9_-]{16}\\.[A-Za-z0-9_-]*\\.[A-Za-z0-9_-]{22}$'`;

export class CreateHl7Message1764600000000 implements MigrationInterface {
  name = 'CreateHl7Message1764600000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`
      CREATE TABLE "hl7_message" (
        "id" uuid NOT NULL,
        "received_at" timestamptz NOT NULL,
        "channel" text NOT NULL,
        "peer" text,
        "sending_application" text,
        "sending_facility" text,
        "message_type" text,
        "control_id" text,
        "version" text,
        "content_hash" text NOT NULL,
        "raw" text NOT NULL,
        "status" text NOT NULL,
        "ack_code" text,
        "error_code" text,
        "error_text" text,
        "attempts" integer NOT NULL DEFAULT 0,
        "processed_at" timestamptz,
        CONSTRAINT "pk_hl7_message" PRIMARY KEY ("id"),
        CONSTRAINT "chk_hl7_message_raw_envelope" CHECK ("raw" ~ ${ENVELOPE}),
        CONSTRAINT "chk_hl7_message_status"
          CHECK ("status" IN ('received', 'processed', 'error', 'rejected'))
      )`);
    await queryRunner.query(
      `CREATE UNIQUE INDEX "uq_hl7_message_resend" ON "hl7_message"
         ("sending_application", "sending_facility", "control_id", "content_hash")`,
    );
    await queryRunner.query(
      `CREATE INDEX "idx_hl7_message_status" ON "hl7_message" ("status", "received_at")`,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP TABLE "hl7_message"`);
  }
}
