import type { SqlParams } from './sql-params.js';

/**
 * The index rows of a type's PHI parameter holding one of these keyed hashes, as a FROM item
 * giving `c.resource_type` and `c.resource_id`: one probe of the index's lookup key per hash,
 * each in a subquery of its own, so that no statistics can make it a scan. PostgreSQL that had
 * not seen a type's rows yet (ANALYZE run before its first ones) planned `hash = ANY(…)` as a
 * filter over every row of the type and parameter (30 ms at 10,000), and a join with the hashes
 * as a hash of them all.
 */
export function blindProbes(
  type: string,
  code: string,
  hashes: readonly string[],
  params: SqlParams,
): string {
  return `unnest(${params.add(hashes)}::text[]) AS t(hash)
        CROSS JOIN LATERAL (SELECT b.resource_type, b.resource_id FROM search_blind b
                             WHERE b.resource_type = ${params.add(type)}
                               AND b.param = ${params.add(code)}
                               AND b.hash = t.hash OFFSET 0) c`;
}
