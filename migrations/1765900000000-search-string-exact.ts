import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * A string parameter's value as written, beside its normalized form: `:exact` is case- and
 * accent-sensitive (FHIR), which the lower-cased, accent-stripped `value` cannot answer. NULL on
 * `:text` rows (no :exact there) and on rows written before this migration, until
 * `search:reindex` rewrites them. Looked up through the `value` index, then compared: no index.
 */
export class SearchStringExact1765900000000 implements MigrationInterface {
  name = 'SearchStringExact1765900000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE "search_string" ADD COLUMN "exact" text`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE "search_string" DROP COLUMN "exact"`);
  }
}
