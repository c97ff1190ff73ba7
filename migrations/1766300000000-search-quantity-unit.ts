import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * A quantity's stated unit and comparator beside its code. R4 matches a search without a system
 * on "either the code or the stated human unit", which `code` (the code, else the unit) could not
 * answer for a quantity that has both; and `<5.4` is not the value 5.4, so a quantity with a
 * comparator is left out of value comparisons. NULL on rows written before this migration, until
 * `search:reindex` rewrites them. Compared after the `value` lookup: no index.
 */
export class SearchQuantityUnit1766300000000 implements MigrationInterface {
  name = 'SearchQuantityUnit1766300000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE "search_quantity" ADD COLUMN "unit" text`);
    await queryRunner.query(`ALTER TABLE "search_quantity" ADD COLUMN "comparator" text`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE "search_quantity" DROP COLUMN "comparator"`);
    await queryRunner.query(`ALTER TABLE "search_quantity" DROP COLUMN "unit"`);
  }
}
