import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Which version of what indexing writes the stored resources' search rows were built by (one
 * row, SEARCH_INDEX_VERSION in src/fhir/search/search-index-status.ts). Empty after this
 * migration, which cannot tell what wrote the rows already there: a service that starts on a
 * database with resources and no row here asks for `search:reindex`, which writes the row; one
 * that starts on a database without resources writes it, as it indexes everything itself.
 */
export class SearchIndexState1767160000000 implements MigrationInterface {
  name = 'SearchIndexState1767160000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`
      CREATE TABLE "search_index_state" (
        "singleton" boolean NOT NULL DEFAULT true,
        "version" integer NOT NULL,
        "built_at" timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT "pk_search_index_state" PRIMARY KEY ("singleton"),
        CONSTRAINT "chk_search_index_state_singleton" CHECK ("singleton")
      )`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP TABLE "search_index_state"`);
  }
}
