import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * When the notifier last took a Subscription up to set its status (activate it, turn it off,
 * set it to error). It takes a few per round, least recently tried first: one it cannot change
 * (a restricted Subscription, which no account may write) goes to the back, rather than being
 * taken again every round ahead of the others. Rows written before have none: tried first.
 */
export class SubscriptionStatusAttemptedAt1766400000000 implements MigrationInterface {
  name = 'SubscriptionStatusAttemptedAt1766400000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(
      `ALTER TABLE "fhir_subscription" ADD COLUMN "status_attempted_at" timestamptz`,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE "fhir_subscription" DROP COLUMN "status_attempted_at"`);
  }
}
