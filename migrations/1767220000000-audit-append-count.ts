import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * audit_append() answers how many entries it queued. It only queues them in audit_pending (a
 * deferred trigger links them at COMMIT), so a BEFORE INSERT trigger a DBA adds there could
 * drop a user's rows and their requests still succeed, with no row in the trail. The service
 * compares the count with what it sent and fails the request closed when they differ.
 */
export class AuditAppendCount1767220000000 implements MigrationInterface {
  name = 'AuditAppendCount1767220000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP FUNCTION "audit_append"(jsonb)`);
    await queryRunner.query(`
      CREATE FUNCTION "audit_append"("entries" jsonb) RETURNS integer LANGUAGE sql AS $$
        WITH "queued" AS (
          INSERT INTO "audit_pending" ("entries") VALUES ("entries")
          RETURNING jsonb_array_length("audit_pending"."entries") AS "n"
        )
        SELECT coalesce(sum("n"), 0)::integer FROM "queued"
      $$`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP FUNCTION "audit_append"(jsonb)`);
    await queryRunner.query(`
      CREATE FUNCTION "audit_append"("entries" jsonb) RETURNS void LANGUAGE sql AS $$
        INSERT INTO "audit_pending" ("entries") VALUES ("entries")
      $$`);
  }
}
