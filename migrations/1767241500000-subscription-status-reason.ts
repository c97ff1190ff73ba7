import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Why the notifier last gave a Subscription its status, in the fixed words of its audit row
 * (`delivery-failed`, `criteria-failed`, `owner=account-disabled`…; never the endpoint,
 * criteria or error text), for an administrator's list of those in error (GET /subscriptions),
 * who may not read the Subscription itself. Its owner's write clears it. The given-up
 * notifications of one are found by an index of their own.
 */
export class SubscriptionStatusReason1767241500000 implements MigrationInterface {
  name = 'SubscriptionStatusReason1767241500000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE "fhir_subscription" ADD COLUMN "status_reason" text`);
    await queryRunner.query(
      `CREATE INDEX "idx_subscription_notification_dead" ON "subscription_notification" ("subscription_id", "seq") WHERE "status" = 'dead'`,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP INDEX "idx_subscription_notification_dead"`);
    await queryRunner.query(`ALTER TABLE "fhir_subscription" DROP COLUMN "status_reason"`);
  }
}
