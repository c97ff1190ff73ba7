import { Injectable } from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import { sqlTimestamp } from './date-range.js';
import { Turns } from '../turns.js';
import { SECURITY_CONTEXT_PARAM, type IndexRows } from './index-rows.js';

/** One index table: its value columns, their SQL types, and the rows of a resource for it. */
interface TableSpec {
  table: string;
  columns: string[];
  types: string[];
  rows: (index: IndexRows) => IndexValue[][];
}

/** A column value of an index row: text, timestamps as text, numbers, or NULL. */
type IndexValue = string | number | null;

const TABLES: readonly TableSpec[] = [
  {
    table: 'search_token',
    columns: ['param', 'system', 'code'],
    types: ['text', 'text', 'text'],
    rows: (index) => index.tokens.map((r) => [r.param, r.system, r.code]),
  },
  {
    table: 'search_string',
    columns: ['param', 'value', 'exact'],
    types: ['text', 'text', 'text'],
    rows: (index) => index.strings.map((r) => [r.param, r.value, r.exact]),
  },
  {
    table: 'search_date',
    columns: ['param', 'low', 'high'],
    types: ['text', 'timestamptz', 'timestamptz'],
    rows: (index) => index.dates.map((r) => [r.param, sqlTimestamp(r.low), sqlTimestamp(r.high)]),
  },
  {
    table: 'search_reference',
    columns: ['param', 'target_type', 'target_id'],
    types: ['text', 'text', 'text'],
    rows: (index) => index.references.map((r) => [r.param, r.targetType, r.targetId]),
  },
  {
    table: 'search_number',
    columns: ['param', 'value'],
    types: ['text', 'numeric'],
    rows: (index) => index.numbers.map((r) => [r.param, r.value]),
  },
  {
    table: 'search_quantity',
    columns: ['param', 'value', 'system', 'code', 'unit', 'comparator'],
    types: ['text', 'numeric', 'text', 'text', 'text', 'text'],
    rows: (index) =>
      index.quantities.map((r) => [r.param, r.value, r.system, r.code, r.unit, r.comparator]),
  },
  {
    table: 'search_uri',
    columns: ['param', 'value'],
    types: ['text', 'text'],
    rows: (index) => index.uris.map((r) => [r.param, r.value]),
  },
  {
    table: 'search_blind',
    columns: ['param', 'hash'],
    types: ['text', 'text'],
    rows: (index) => index.blind.map((r) => [r.param, r.hash]),
  },
];

/** The index tables, for tools that count or compare their rows (the benchmarks). */
export const INDEX_TABLES: readonly string[] = TABLES.map(({ table }) => table);

/** A resource's index rows, with the resource they belong to. */
export interface ResourceIndex {
  resourceType: string;
  resourceId: string;
  rows: IndexRows;
  /**
   * The version they index, when it is being written: filed under each patient its references
   * name (resource_history_patient), in the same statement. None for a reindex.
   */
  version?: IndexedVersion;
}

/** A stored version and its index rows (null for a deletion), to file (see refile). */
export interface StoredVersionRows {
  resourceType: string;
  resourceId: string;
  versionId: number;
  rows: IndexRows | null;
}

/** A version whose index rows are written (see ResourceIndex.version). */
export interface IndexedVersion {
  versionId: number;
  lastUpdated: Date;
}

/**
 * Writes index rows inside the caller's transaction (the one that writes the versions), in
 * one statement whatever the number of resources and tables: each table is a data-modifying
 * CTE inserting from arrays (unnest). Round trips to PostgreSQL are most of a write's cost.
 */
@Injectable()
export class SearchIndexRepository {
  /**
   * Replaces a resource's index rows with `rows` (none for a deletion), of `version` when one is
   * being written (see ResourceIndex.version). Two statements: in one, an INSERT could meet the
   * unique key of a row its sibling DELETE has not removed yet.
   */
  async replace(
    manager: EntityManager,
    resourceType: string,
    resourceId: string,
    rows: IndexRows | null,
    version?: IndexedVersion,
  ): Promise<void> {
    const deletions = TABLES.map(
      ({ table }, i) =>
        `d${i} AS (DELETE FROM "${table}" WHERE resource_type = $1 AND resource_id = $2)`,
    );
    await manager.query(`WITH ${deletions.join(', ')} SELECT 1`, [resourceType, resourceId]);
    if (rows) await this.insert(manager, [{ resourceType, resourceId, rows, version }]);
  }

  /**
   * Files each of these stored versions under exactly the patients its rows name, as a write
   * files it (see ResourceIndex.version; none for a deletion, `rows` null): inserts the rows
   * missing and deletes those of these versions under a patient they do not name, or at another
   * time than the version's. Only these versions' rows are deleted, never all of a record's, so
   * a version written alongside keeps its own. One statement; the time is the stored one.
   */
  async refile(manager: EntityManager, versions: readonly StoredVersionRows[]): Promise<void> {
    if (versions.length === 0) return;
    const filed = versions.flatMap(({ rows, resourceType, resourceId, versionId }) =>
      rows
        ? [...patientsNamed(rows)].map((patient) => [patient, resourceType, resourceId, versionId])
        : [],
    );
    await manager.query(
      `WITH e AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::integer[])
                    AS e(patient_id, resource_type, id, version_id)),
            i AS (INSERT INTO resource_history_patient
                         (patient_id, resource_type, last_updated, id, version_id)
                  SELECT e.patient_id, h.resource_type, h.last_updated, h.id, h.version_id
                    FROM e JOIN resource_history h USING (resource_type, id, version_id)
                  ON CONFLICT DO NOTHING),
            d AS (DELETE FROM resource_history_patient f
                   USING unnest($5::text[], $6::text[], $7::integer[]) AS v(resource_type, id, version_id)
                   WHERE f.resource_type = v.resource_type AND f.id = v.id
                     AND f.version_id = v.version_id
                     AND NOT EXISTS (
                         SELECT 1 FROM e JOIN resource_history h USING (resource_type, id, version_id)
                          WHERE e.patient_id = f.patient_id AND e.resource_type = f.resource_type
                            AND e.id = f.id AND e.version_id = f.version_id
                            AND h.last_updated = f.last_updated))
       SELECT 1`,
      [
        ...[0, 1, 2, 3].map((column) => filed.map((row) => row[column])),
        versions.map((v) => v.resourceType),
        versions.map((v) => v.resourceId),
        versions.map((v) => v.versionId),
      ],
    );
  }

  /**
   * How many live resources of each type refer to any of these, and by which parameters,
   * relative or absolute reference alike: an absolute URL may be this server's own. Reads the
   * index by target; a deleted resource has no index rows, so it refers to nothing. Not a
   * Binary's securityContext: the document it names may be deleted, and the Binary then follows
   * it as it was (SecurityContexts), as it did before the context was indexed.
   */
  async referrersOf(
    manager: EntityManager,
    targets: { type: string; id: string }[],
  ): Promise<{ resourceType: string; params: string[]; count: number }[]> {
    const rows = await manager.query<{ resource_type: string; params: string[]; count: string }[]>(
      `SELECT x.resource_type, array_agg(DISTINCT x.param) AS params,
              count(DISTINCT x.resource_id) AS count
         FROM search_reference x
         JOIN unnest($1::text[], $2::text[]) AS t(type, id)
           ON x.target_type = t.type AND x.target_id = t.id
        WHERE x.param <> $3
        GROUP BY x.resource_type
        ORDER BY x.resource_type`,
      [targets.map((t) => t.type), targets.map((t) => t.id), SECURITY_CONTEXT_PARAM],
    );
    return rows.map((row) => ({
      resourceType: row.resource_type,
      params: row.params,
      count: Number(row.count),
    }));
  }

  /**
   * The live resources that refer to any of these (by any parameter), in a stable order so
   * that concurrent cascading deletes lock rows in the same order; at most `limit`. Not by a
   * Binary's securityContext (see referrersOf): a cascade deletes no documents' bytes.
   */
  async referringResources(
    manager: EntityManager,
    targets: { type: string; id: string }[],
    limit: number,
  ): Promise<{ type: string; id: string }[]> {
    const rows = await manager.query<{ resource_type: string; resource_id: string }[]>(
      `SELECT DISTINCT x.resource_type, x.resource_id
         FROM search_reference x
         JOIN unnest($1::text[], $2::text[]) AS t(type, id)
           ON x.target_type = t.type AND x.target_id = t.id
        WHERE x.param <> $4
        ORDER BY x.resource_type, x.resource_id
        LIMIT $3`,
      [targets.map((t) => t.type), targets.map((t) => t.id), limit, SECURITY_CONTEXT_PARAM],
    );
    return rows.map((row) => ({ type: row.resource_type, id: row.resource_id }));
  }

  /** The index rows of resources that have none yet (their first versions). */
  async insert(manager: EntityManager, resources: ResourceIndex[]): Promise<void> {
    const values: unknown[] = [];
    const ctes = await this.insertions(resources, values);
    if (ctes.length > 0) {
      await manager.query(`WITH ${ctes.join(', ')} SELECT 1`, values);
    }
  }

  /**
   * The INSERT CTEs (named i0, i1…) for the resources' rows, one per table that has any, their
   * arrays appended to `values` (whose positions the placeholders take): for a caller that
   * writes them in the same statement as the versions they index.
   */
  insertions(
    resources: readonly ResourceIndex[],
    values: unknown[],
    turns?: Turns,
  ): Promise<string[]> {
    return insertions(resources, values, turns);
  }
}

/**
 * SearchIndexRepository.insertions; exported for the benchmark's baseline, which sends it too.
 * Each array goes as the text of its PostgreSQL literal, built here in turns (see Turns): a
 * transaction of 8,000 Patients has 2 million index values, and building their rows and then
 * pg's serialization of the arrays held the event loop 110 ms and more in one block.
 */
export async function insertions(
  resources: readonly ResourceIndex[],
  values: unknown[],
  turns = new Turns(),
): Promise<string[]> {
  const arrays = TABLES.map((spec) => ['text', 'text', ...spec.types].map(() => new ArrayText()));
  for (const { resourceType, resourceId, rows } of resources) {
    await turns.next();
    for (const [i, spec] of TABLES.entries()) {
      const columns = arrays[i]!;
      for (const row of spec.rows(rows)) {
        columns[0]!.add(resourceType);
        columns[1]!.add(resourceId);
        row.forEach((value, column) => columns[column + 2]!.add(value));
      }
    }
  }
  const ctes = [...filedVersions(resources, values)];
  for (const [i, spec] of TABLES.entries()) {
    const columns = arrays[i]!;
    if (columns[0]!.empty) continue;
    const placeholders: string[] = [];
    for (const [column, type] of ['text', 'text', ...spec.types].entries()) {
      // Joining a column of 500,000 blind hashes takes a turn of its own.
      await turns.next();
      values.push(columns[column]!.text());
      placeholders.push(`$${values.length}::${type}[]`);
    }
    ctes.push(
      `i${i} AS (INSERT INTO "${spec.table}" (resource_type, resource_id, ${spec.columns.join(', ')})
         SELECT * FROM unnest(${placeholders.join(', ')}))`,
    );
  }
  return ctes;
}

/**
 * The CTE (named p) filing each version being written under the patients its references name
 * (see ResourceIndex.version), if any: the key a patient-scoped history pages by.
 */
function filedVersions(resources: readonly ResourceIndex[], values: unknown[]): string[] {
  const types = ['text', 'text', 'timestamptz', 'text', 'integer'];
  const columns = types.map(() => new ArrayText());
  for (const { resourceType, resourceId, rows, version } of resources) {
    if (!version) continue;
    for (const patient of patientsNamed(rows)) {
      const row = [patient, resourceType, version.lastUpdated.toISOString(), resourceId];
      row.forEach((value, column) => columns[column]!.add(value));
      columns[4]!.add(version.versionId);
    }
  }
  if (columns[0]!.empty) return [];
  const placeholders = types.map((type, i) => {
    values.push(columns[i]!.text());
    return `$${values.length}::${type}[]`;
  });
  return [
    `p AS (INSERT INTO resource_history_patient (patient_id, resource_type, last_updated, id, version_id)
       SELECT * FROM unnest(${placeholders.join(', ')}) ON CONFLICT DO NOTHING)`,
  ];
}

/** The patients a version is filed under (resource_history_patient): those its references name. */
function patientsNamed(rows: IndexRows): Set<string> {
  return new Set(rows.references.filter((r) => r.targetType === 'Patient').map((r) => r.targetId));
}

/** Elements joined into one string at a time: a few hundred strings to join at the end. */
const JOINED = 4096;

/**
 * A one-dimensional PostgreSQL array literal, each element quoted as pg quotes it (or NULL).
 * Joined in pieces, not appended to one string: V8 flattens a string of two million appends in
 * one block, when pg writes it, slower than pg serialising the array.
 */
class ArrayText {
  private readonly joined: string[] = [];
  private elements: string[] = [];
  empty = true;

  add(value: IndexValue): void {
    if (value === null) {
      this.elements.push('NULL');
    } else {
      const text = String(value);
      this.elements.push(`"${QUOTED.test(text) ? text.replace(/[\\"]/g, '\\$&') : text}"`);
    }
    this.empty = false;
    if (this.elements.length === JOINED) {
      this.joined.push(this.elements.join(','));
      this.elements = [];
    }
  }

  text(): string {
    return `{${[...this.joined, ...(this.elements.length > 0 ? [this.elements.join(',')] : [])].join(',')}}`;
  }
}

const QUOTED = /[\\"]/;
