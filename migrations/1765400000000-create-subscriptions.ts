import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * FHIR R4 Subscriptions (rest-hook). `fhir_subscription` holds what matching needs besides the
 * Subscription resource itself: whose access the criteria are evaluated with (the user who
 * last wrote it), the type it watches, and its status (the notifier activates `requested` ones). `subscription_notification` is the outbox: a row is
 * written in the transaction of the change that matched, and a worker delivers it.
 */
export class CreateSubscriptions1765400000000 implements MigrationInterface {
  name = 'CreateSubscriptions1765400000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`
      CREATE TABLE "fhir_subscription" (
        "id" text NOT NULL,
        "criteria_type" text NOT NULL,
        "criteria" text NOT NULL,
        "status" text NOT NULL,
        "owner" jsonb NOT NULL,
        "active" boolean NOT NULL,
        "updated_at" timestamptz NOT NULL,
        CONSTRAINT "pk_fhir_subscription" PRIMARY KEY ("id")
      )`);
    await queryRunner.query(`
      CREATE TABLE "subscription_notification" (
        "seq" bigserial NOT NULL,
        "subscription_id" text NOT NULL,
        "resource_type" text NOT NULL,
        "resource_id" text NOT NULL,
        "version_id" integer NOT NULL,
        "created_at" timestamptz NOT NULL,
        "status" text NOT NULL,
        "attempts" integer NOT NULL DEFAULT 0,
        "next_attempt_at" timestamptz NOT NULL,
        "last_error" text,
        "sent_at" timestamptz,
        CONSTRAINT "pk_subscription_notification" PRIMARY KEY ("seq"),
        CONSTRAINT "chk_subscription_notification_status"
          CHECK ("status" IN ('pending', 'sent', 'dead', 'cancelled'))
      )`);
    await queryRunner.query(
      `CREATE INDEX "idx_subscription_notification_due" ON "subscription_notification" ("next_attempt_at", "seq") WHERE "status" = 'pending'`,
    );
    await queryRunner.query(
      `CREATE INDEX "idx_subscription_notification_subscription" ON "subscription_notification" ("subscription_id", "seq") WHERE "status" = 'pending'`,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP TABLE "subscription_notification"`);
    await queryRunner.query(`DROP TABLE "fhir_subscription"`);
  }
}
