import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * A message without a control id (its header could not be read) escapes the resend key, NULL
 * being distinct from NULL: a resend of it is found by its content hash, through this index.
 * Not unique: rows that a sender's retries already stored stay as they are.
 */
export class Hl7MessageUnreadResend1766800000000 implements MigrationInterface {
  name = 'Hl7MessageUnreadResend1766800000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(
      `CREATE INDEX "idx_hl7_message_unread_resend" ON "hl7_message" ("content_hash")
         WHERE "control_id" IS NULL`,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP INDEX "idx_hl7_message_unread_resend"`);
  }
}
