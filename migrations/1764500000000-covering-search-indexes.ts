import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Searches answered from indexes alone, without reading a resource row before it is known to be
 * on the page:
 * - search lookups end in resource_id, so an EXISTS on an index table is answered from the index
 *   and its matches come out in resource id order, which ORDER BY r.id LIMIT n can merge and
 *   stop early on. Where an exact-match lookup cannot repeat (index rows are deduplicated per
 *   resource), the index is UNIQUE: the planner then knows a semi-join needs no de-duplication
 *   and walks the matches in id order instead of collecting and sorting all of them (a family
 *   prefix shared by 1,100 patients: 72 ms before, 0.7 ms after);
 * - the live resources' ids (and last_updated, for _lastUpdated) are an index of their own, so
 *   the page query checks candidates in the index and reads only the page's rows (see
 *   SearchRepository.page);
 * - a keyed hash belongs to one parameter, which the planner learns from dependency statistics;
 *   without them it multiplies the two selectivities and takes a birth year shared by 1,100
 *   patients for 11, then reads those rows first.
 */
const LOOKUPS: Record<string, { columns: string; unique: boolean }> = {
  search_token: { columns: `"resource_type", "param", "code", "system"`, unique: true },
  search_string: { columns: `"resource_type", "param", "value" text_pattern_ops`, unique: false },
  // Range lookups (string prefixes, dates, numbers) do not come out in id order: UNIQUE would
  // buy nothing there.
  search_date: { columns: `"resource_type", "param", "low", "high"`, unique: false },
  search_reference: {
    columns: `"target_type", "target_id", "param", "resource_type"`,
    unique: true,
  },
  search_number: { columns: `"resource_type", "param", "value"`, unique: false },
  // A quantity's unit is not in its lookup: 5 mg and 5 mL are one key.
  search_quantity: { columns: `"resource_type", "param", "value"`, unique: false },
  search_uri: { columns: `"resource_type", "param", "value"`, unique: false },
  search_blind: { columns: `"resource_type", "param", "hash"`, unique: true },
};

export class CoveringSearchIndexes1764500000000 implements MigrationInterface {
  name = 'CoveringSearchIndexes1764500000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await this.rebuild(queryRunner, true);
    await queryRunner.query(
      `CREATE INDEX "idx_resource_live" ON "resource" ("resource_type", "id") INCLUDE ("last_updated") WHERE NOT "deleted"`,
    );
    await queryRunner.query(
      `CREATE STATISTICS "st_search_blind_param_hash" (dependencies) ON "param", "hash" FROM "search_blind"`,
    );
    // Now, not at autovacuum's next visit: until then the planner has no dependency statistics.
    await queryRunner.query(`ANALYZE "search_blind"`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP STATISTICS "st_search_blind_param_hash"`);
    await queryRunner.query(`DROP INDEX "idx_resource_live"`);
    await this.rebuild(queryRunner, false);
  }

  private async rebuild(queryRunner: QueryRunner, covering: boolean): Promise<void> {
    for (const [table, { columns, unique }] of Object.entries(LOOKUPS)) {
      await queryRunner.query(`DROP INDEX "idx_${table}_lookup"`);
      await queryRunner.query(
        covering
          ? `CREATE ${unique ? 'UNIQUE ' : ''}INDEX "idx_${table}_lookup" ON "${table}" (${columns}, "resource_id")`
          : `CREATE INDEX "idx_${table}_lookup" ON "${table}" (${columns})`,
      );
    }
  }
}
