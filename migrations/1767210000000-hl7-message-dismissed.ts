import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * A stored HL7 message can be `dismissed`: one that failed (`error`, `rejected`) which an
 * operator has set aside, its sender having sent a correction, so that it no longer counts as
 * needing attention. Kept like every message, and reprocessed if need be.
 */
export class Hl7MessageDismissed1767210000000 implements MigrationInterface {
  name = 'Hl7MessageDismissed1767210000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(
      `ALTER TABLE "hl7_message" DROP CONSTRAINT "chk_hl7_message_status",
         ADD CONSTRAINT "chk_hl7_message_status"
           CHECK ("status" IN ('received', 'processed', 'error', 'rejected', 'ignored', 'dismissed'))`,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    // Without the status, a dismissed message is the failure it was.
    await queryRunner.query(
      `UPDATE "hl7_message" SET "status" = CASE WHEN "ack_code" = 'AR' THEN 'rejected' ELSE 'error' END
        WHERE "status" = 'dismissed'`,
    );
    await queryRunner.query(
      `ALTER TABLE "hl7_message" DROP CONSTRAINT "chk_hl7_message_status",
         ADD CONSTRAINT "chk_hl7_message_status"
           CHECK ("status" IN ('received', 'processed', 'error', 'rejected', 'ignored'))`,
    );
  }
}
