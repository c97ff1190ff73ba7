import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Finds a message by its control id (`GET /hl7/messages?controlId=`) among all those received,
 * as an operator does when a sender asks what became of one: without it, a lookup among the
 * processed messages read every one of them.
 */
export class Hl7MessageControlIdIndex1767190000000 implements MigrationInterface {
  name = 'Hl7MessageControlIdIndex1767190000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(
      `CREATE INDEX "idx_hl7_message_control_id" ON "hl7_message" ("control_id")`,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP INDEX "idx_hl7_message_control_id"`);
  }
}
