import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Why a Subscription's criteria failed in PostgreSQL while a write was matched against them: the
 * Subscription stopped matching there and then (the write went on), and the notifier sets it
 * to `error` with this reason, which it clears.
 */
export class SubscriptionFailure1766000000000 implements MigrationInterface {
  name = 'SubscriptionFailure1766000000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE "fhir_subscription" ADD COLUMN "failure" text`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE "fhir_subscription" DROP COLUMN "failure"`);
  }
}
