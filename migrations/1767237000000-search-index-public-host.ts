import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Which host PUBLIC_URL named when the search index was built (NULL: unset). It decides how an
 * absolute reference is indexed (src/fhir/literal-reference.ts): with it, another server's keeps
 * its whole URL as its id; without it, it is read by type and id as this server's. A service
 * started with another value than the index was built with asks for `search:reindex`, as it does
 * for an older index version. A row recorded before this migration reads as built without
 * PUBLIC_URL: where it was set, the service asks for one rebuild it may not have needed, rather
 * than let a foreign patient's records into a local chart in silence.
 */
export class SearchIndexPublicHost1767237000000 implements MigrationInterface {
  name = 'SearchIndexPublicHost1767237000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE "search_index_state" ADD COLUMN "public_host" text`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE "search_index_state" DROP COLUMN "public_host"`);
  }
}
