import { createHash } from 'node:crypto';
import type { IndexRows } from '../../src/fhir/search/index-rows.js';
import { insertions } from '../../src/fhir/search/search-index.repository.js';

/**
 * The SQL CareVault sends for the benchmark's requests, copied from a capture of its
 * statements (`log_statement = 'all'`) or, where the text depends on what is written (the
 * CTEs of a create), built as CareVault builds it and compared with a capture: the baseline
 * must cost PostgreSQL exactly what CareVault costs it.
 * bench/baseline/check.ts compares both sides' statements.
 */

/** TypeORM's `transaction()` opens and ends transactions with these (simple protocol). */
export const START_TRANSACTION = 'START TRANSACTION';
export const COMMIT = 'COMMIT';
export const ROLLBACK = 'ROLLBACK';

/** ResourceRepository.findCurrent: prepared, with resource-row.ts's columns. */
export const SELECT_CURRENT =
  'SELECT r.resource_type, r.id, r.version_id, r.last_updated, r.deleted, r.content FROM resource r WHERE r.resource_type = $1 AND r.id = $2';

/**
 * ResourceRepository.lockLiveRows (RetiredPatients, checking that a write's new references name
 * no merged Patient): prepared, the rows locked FOR KEY SHARE. Values: type, ids sorted.
 */
export const LOCK_LIVE_ROWS = `SELECT r.resource_type, r.id, r.version_id, r.last_updated, r.deleted, r.content FROM resource r
        WHERE r.resource_type = $1 AND r.id = ANY($2::text[]) AND NOT r.deleted
        ORDER BY r.id
        FOR KEY SHARE OF r`;

export interface CurrentRow {
  version_id: number;
  last_updated: Date;
  deleted: boolean;
  content: string | null;
}

export const CONFIDENTIALITY = 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality';

/** The confidentiality codes that restrict a record (RESTRICTING_CODES): R and V. */
export const RESTRICTING_CODES: readonly string[] = ['R', 'V'];

/**
 * SearchRepository.page for one PHI criterion (one keyed hash) and the default sort (`_id`),
 * restricted records left out (the codes are constants in the SQL, as in CareVault's). Values:
 * type, hash, parameter code, CONFIDENTIALITY.
 */
export const SEARCH_ONE_HASH = `SELECT r.resource_type, r.id, r.version_id, r.last_updated, r.deleted, r.content, (p.s0)::text AS k0
         FROM (SELECT r.resource_type, r.id, r.id AS s0 FROM resource r WHERE r.resource_type = $1 AND NOT r.deleted AND EXISTS (SELECT 1 FROM search_blind m1 WHERE m1.resource_type = r.resource_type AND m1.resource_id = r.id AND m1.param = $3 AND m1.hash = $2) AND NOT EXISTS (SELECT 1 FROM search_token x2 WHERE x2.resource_type = r.resource_type AND x2.resource_id = r.id AND x2.param = '_security' AND x2.system = $4 AND x2.code IN (${RESTRICTING_CODES.map((code) => `'${code}'`).join(', ')}))
               ORDER BY r.id ASC LIMIT 21) p
         JOIN resource r ON r.resource_type = p.resource_type AND r.id = p.id
        ORDER BY p.s0 ASC`;

export interface PageRow {
  resource_type: string;
  id: string;
  version_id: number;
  last_updated: Date;
  deleted: boolean;
  content: string;
  k0: string;
}

/** The name preparedQuery() gives a statement, so both sides prepare it under one name. */
export function statementName(text: string): string {
  return `cv_${createHash('sha256').update(text).digest('base64url').slice(0, 24)}`;
}

/** The tables a version is written to; its ciphertext is bound to the table (AAD). */
export type VersionTable = 'resource_history' | 'resource';

/** A first version to insert, with its index rows. */
export interface FirstVersion {
  resourceType: string;
  id: string;
  lastUpdated: Date;
  index: IndexRows;
}

/**
 * ResourceRepository.insertFirst for POST creates: resources' first versions in one statement,
 * a data-modifying CTE per table inserting from arrays (unnest): the history rows (h, with the
 * method that wrote them) and the current rows (r), `content(table, version)` giving the
 * ciphertext for each, then SearchIndexRepository's own insertions (p, each version filed under
 * the patients it refers to, then i0…i7). Placeholders are numbered in that order.
 */
export async function insertFirstVersions<T extends FirstVersion>(
  versions: readonly T[],
  content: (table: VersionTable, version: T) => string,
): Promise<{ text: string; values: unknown[] }> {
  const values: unknown[] = [];
  const unnest = (arrays: [type: string, values: unknown[]][]): string =>
    `unnest(${arrays
      .map(([type, array]) => {
        values.push(array);
        return `$${values.length}::${type}[]`;
      })
      .join(', ')})`;
  const ctes = (
    [
      ['h', 'resource_history'],
      ['r', 'resource'],
    ] as const
  ).map(([name, table]) => {
    const columns: [column: string, type: string, values: unknown[]][] = [
      ['resource_type', 'text', versions.map((v) => v.resourceType)],
      ['id', 'text', versions.map((v) => v.id)],
      ['version_id', 'integer', versions.map(() => 1)],
      ['last_updated', 'timestamptz', versions.map((v) => v.lastUpdated.toISOString())],
      ['deleted', 'boolean', versions.map(() => false)],
      ['content', 'text', versions.map((v) => content(table, v))],
    ];
    if (table === 'resource_history') columns.push(['method', 'text', versions.map(() => 'POST')]);
    return `${name} AS (INSERT INTO "${table}" (${columns.map(([column]) => column).join(', ')})
       SELECT * FROM ${unnest(columns.map(([, type, array]) => [type, array]))})`;
  });
  ctes.push(
    ...(await insertions(
      versions.map(({ resourceType, id, lastUpdated, index }) => ({
        resourceType,
        resourceId: id,
        rows: index,
        version: { versionId: 1, lastUpdated },
      })),
      values,
    )),
  );
  return { text: `WITH ${ctes.join(', ')} SELECT 1`, values };
}
