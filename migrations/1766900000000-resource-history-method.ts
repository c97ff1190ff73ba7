import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The interaction that wrote each version (POST, PUT, PATCH or DELETE), which a history entry's
 * `request` states: a version 1 was listed as a POST whether a POST or an update-as-create (PUT)
 * made it, and a patched version as a PUT. NULL for versions written before this: the store did
 * not keep it, and history infers it as it did (version 1 POST, a deletion DELETE, else PUT).
 */
export class ResourceHistoryMethod1766900000000 implements MigrationInterface {
  name = 'ResourceHistoryMethod1766900000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(
      `ALTER TABLE "resource_history" ADD COLUMN "method" text
         CONSTRAINT "chk_resource_history_method" CHECK ("method" IN ('POST', 'PUT', 'PATCH', 'DELETE'))`,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE "resource_history" DROP COLUMN "method"`);
  }
}
