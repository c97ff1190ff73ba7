import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The Patient an outbound ADT^A40 merges its resource into, whose PID the message carries: the
 * audit row of its delivery names both patients, as both patients' data went out.
 */
export class Hl7OutboxSurvivor1767241600500 implements MigrationInterface {
  name = 'Hl7OutboxSurvivor1767241600500';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE "hl7_outbox" ADD COLUMN "survivor_id" text`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE "hl7_outbox" DROP COLUMN "survivor_id"`);
  }
}
