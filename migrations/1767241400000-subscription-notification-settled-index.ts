import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Finds the notifications delivered or cancelled a week ago, which the notifier deletes as it
 * starts and then hourly: without it, each purge read the whole outbox, a week of deliveries,
 * at least once (its last batch, which finds fewer than it may delete; 454 ms for 510,000 rows).
 */
export class SubscriptionNotificationSettledIndex1767241400000 implements MigrationInterface {
  name = 'SubscriptionNotificationSettledIndex1767241400000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(
      `CREATE INDEX "idx_subscription_notification_settled" ON "subscription_notification" ("created_at") WHERE "status" IN ('sent', 'cancelled')`,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP INDEX "idx_subscription_notification_settled"`);
  }
}
