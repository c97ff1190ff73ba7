import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * A Subscription's `end`: past it, it matches no write and the notifier turns it `off`, as R4
 * has the server do. Rows written before have none recorded (the resource is encrypted, so
 * there is nothing to fill it from here): such a Subscription is turned off by the notifier
 * when a notification of it is cancelled for having ended, or takes its end when next written.
 */
export class SubscriptionEnd1766100000000 implements MigrationInterface {
  name = 'SubscriptionEnd1766100000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE "fhir_subscription" ADD COLUMN "ends_at" timestamptz`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE "fhir_subscription" DROP COLUMN "ends_at"`);
  }
}
