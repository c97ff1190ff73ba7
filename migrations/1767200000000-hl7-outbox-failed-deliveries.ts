import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The failed deliveries of an outbound message (it reached the destination, which answered AE
 * or nothing), apart from its attempts: only those set it aside as dead, where a destination
 * that could not be reached for a while (an interface engine's maintenance) used to kill the
 * message at the head of its queue.
 */
export class Hl7OutboxFailedDeliveries1767200000000 implements MigrationInterface {
  name = 'Hl7OutboxFailedDeliveries1767200000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(
      `ALTER TABLE "hl7_outbox" ADD "failed_deliveries" integer NOT NULL DEFAULT 0`,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE "hl7_outbox" DROP COLUMN "failed_deliveries"`);
  }
}
