import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * A stored HL7 message can be `ignored`: of a type the deployment acknowledges without mapping
 * it (HL7_IGNORE), kept like every message so that it can be processed later.
 */
export class Hl7MessageIgnored1765800000000 implements MigrationInterface {
  name = 'Hl7MessageIgnored1765800000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(
      `ALTER TABLE "hl7_message" DROP CONSTRAINT "chk_hl7_message_status",
         ADD CONSTRAINT "chk_hl7_message_status"
           CHECK ("status" IN ('received', 'processed', 'error', 'rejected', 'ignored'))`,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    // Without the status, an ignored message is one still to process.
    await queryRunner.query(
      `UPDATE "hl7_message" SET "status" = 'received', "ack_code" = NULL WHERE "status" = 'ignored'`,
    );
    await queryRunner.query(
      `ALTER TABLE "hl7_message" DROP CONSTRAINT "chk_hl7_message_status",
         ADD CONSTRAINT "chk_hl7_message_status"
           CHECK ("status" IN ('received', 'processed', 'error', 'rejected'))`,
    );
  }
}
