import type { MigrationInterface, QueryRunner } from 'typeorm';

/** The index tables `_sort` reads (see search-sort.ts), and the columns it takes the key from. */
const SORTED: Record<string, string> = {
  search_string: `"value"`,
  search_token: `"code"`,
  search_date: `"low", "high"`,
  search_number: `"value"`,
  search_quantity: `"value"`,
};

/**
 * A resource's rows of one parameter, in order of their values: `_sort` takes each candidate's
 * key from them (`SELECT min(low) … WHERE resource_type, resource_id, param`).
 *
 * The per-resource index had no parameter, and the lookup index has the resource id last, after
 * the values. On tables not yet analysed (after a load or a restore, before autovacuum comes) the
 * planner read each candidate's key from the lookup index, which holds every column asked for
 * and, for min(), is in value order: a scan of every row of the parameter for each candidate.
 * `Observation?_sort=-date` at 40,000 Observations ran past any statement timeout (more than
 * 120 s), and so did `_sort=date`, `status` or `value-quantity`. With resource, parameter and
 * value as the key, a key is one probe of this index (first or last entry, for min() and max()),
 * analysed or not. It replaces the old index, its prefix, which deletes by resource still use.
 */
export class SearchSortByResource1766440000000 implements MigrationInterface {
  name = 'SearchSortByResource1766440000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    for (const [table, columns] of Object.entries(SORTED)) {
      await queryRunner.query(`DROP INDEX "idx_${table}_resource"`);
      await queryRunner.query(
        `CREATE INDEX "idx_${table}_resource" ON "${table}" ("resource_type", "resource_id", "param", ${columns})`,
      );
    }
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    for (const table of Object.keys(SORTED)) {
      await queryRunner.query(`DROP INDEX "idx_${table}_resource"`);
      await queryRunner.query(
        `CREATE INDEX "idx_${table}_resource" ON "${table}" ("resource_type", "resource_id")`,
      );
    }
  }
}
