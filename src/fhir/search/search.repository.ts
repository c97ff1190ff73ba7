import { Injectable } from '@nestjs/common';
import { CONFIDENTIALITY, RESTRICTING_CODES } from '../../access/resource-access.js';
import { PhiSubscriber } from '../../crypto/phi.subscriber.js';
import { preparedQuery } from '../../database/prepared-query.js';
import { UnitOfWork } from '../../database/unit-of-work.js';
import type { ResourceEntity } from '../resource.entity.js';
import { RESOURCE_COLUMNS, resourceEntityOf, type ResourceRow } from '../resource-row.js';
import { blindProbes } from './blind-probes.js';
import { orderBy, type SortColumn } from './search-sort.js';
import { SqlParams } from './sql-params.js';

export interface PageRow {
  resource: ResourceEntity;
  keys: string[];
}

/** The statement of SearchRepository.ids. */
export function idsSql(where: string, limit: number, candidates?: string): string {
  return candidates
    ? `SELECT m.id FROM ${candidates}
        CROSS JOIN LATERAL (SELECT r.id FROM resource r
                             WHERE r.id = c.resource_id AND ${where} OFFSET 0) m
        GROUP BY m.id ORDER BY m.id LIMIT ${Math.trunc(limit)}`
    : `SELECT r.id FROM resource r WHERE ${where} ORDER BY r.id LIMIT ${Math.trunc(limit)}`;
}

/** SQL of searches: pages of matching resources with their sort keys, counts, _include loads. */
@Injectable()
export class SearchRepository {
  constructor(
    private readonly unitOfWork: UnitOfWork,
    private readonly phi: PhiSubscriber,
  ) {}

  /**
   * One page of matches with their sort keys, decrypted, in one statement. The inner query
   * finds the page from indexes only (criteria on the index tables, the live-resource index for
   * ids), whatever join order the planner picks; the outer one reads just the page's rows. Blind
   * hashes mislead the planner's row estimates, and a plan that read every candidate resource
   * row before intersecting the criteria was the slow case: with the indexes of migration
   * 1764500000000, a family plus birth year search at 100,000 patients went from 25 ms to 2.
   */
  async page(
    where: string,
    values: unknown[],
    columns: readonly SortColumn[],
    backwards: boolean,
    limit: number,
  ): Promise<PageRow[]> {
    const sortValues = columns.map((column, i) => `, ${column.sql} AS s${i}`).join('');
    const keys = columns.map((_, i) => `, (p.s${i})::text AS k${i}`).join('');
    const outer = columns.map((column, i) => ({ ...column, sql: `p.s${i}` }));
    const rows = await preparedQuery<ResourceRow & Record<string, string>>(
      this.unitOfWork.manager,
      `SELECT ${RESOURCE_COLUMNS}${keys}
         FROM (SELECT r.resource_type, r.id${sortValues} FROM resource r WHERE ${where}
               ORDER BY ${orderBy(columns, backwards)} LIMIT ${Math.trunc(limit)}) p
         JOIN resource r ON r.resource_type = p.resource_type AND r.id = p.id
        ORDER BY ${orderBy(outer, backwards)}`,
      values,
    );
    return rows.map((row) => ({
      resource: resourceEntityOf(row, this.phi),
      keys: columns.map((_, i) => row[`k${i}`]!),
    }));
  }

  /**
   * Observation/$lastn: of the matches, the `max` most recent (by the `date` parameter, their
   * effective time) of each code for each subject, grouped by subject and code; at most
   * `limit` ids. An Observation with several codings counts in the group of each.
   */
  async lastN(where: string, values: unknown[], max: number, limit: number): Promise<string[]> {
    const rows = await preparedQuery<{ id: string }>(
      this.unitOfWork.manager,
      `SELECT id FROM (
         SELECT r.id, s.target_id, t.system, t.code, d.at,
                row_number() OVER (PARTITION BY s.target_type, s.target_id, t.system, t.code
                                   ORDER BY d.at DESC NULLS LAST, r.id) AS n
           FROM resource r
           JOIN search_token t
             ON t.resource_type = r.resource_type AND t.resource_id = r.id AND t.param = 'code'
           LEFT JOIN search_reference s
             ON s.resource_type = r.resource_type AND s.resource_id = r.id AND s.param = 'subject'
           LEFT JOIN LATERAL (SELECT max(x.high) AS at FROM search_date x
                               WHERE x.resource_type = r.resource_type AND x.resource_id = r.id
                                 AND x.param = 'date') d ON TRUE
          WHERE ${where}) g
        WHERE n <= ${Math.trunc(max)}
        GROUP BY id
        ORDER BY min(target_id), min(system), min(code), max(at) DESC NULLS LAST, id
        LIMIT ${Math.trunc(limit)}`,
      values,
    );
    return rows.map((row) => row.id);
  }

  /**
   * Ids only, for conditional operations, which decide on matches without reading them. With
   * `candidates` (SearchConditions.candidates: `c.resource_type`, `c.resource_id`, which the
   * WHERE clause compares the type with), each candidate's row is probed by its key, whatever
   * the statistics say: PostgreSQL that had not seen a type yet (ANALYZE run before its first
   * rows) read every resource of the type in id order to find one, 65 ms a lookup at 6,000
   * Observations (an HL7 correction makes one per result), 0.25 ms from the candidates.
   */
  async ids(
    where: string,
    values: unknown[],
    limit: number,
    candidates?: string,
  ): Promise<string[]> {
    const rows = await preparedQuery<{ id: string }>(
      this.unitOfWork.manager,
      idsSql(where, limit, candidates),
      values,
    );
    return rows.map((row) => row.id);
  }

  /**
   * Whether any live resource of the type has one of these keyed hashes under a PHI parameter,
   * from the index alone (a deletion leaves no index rows), whatever the statistics say
   * (blindProbes).
   */
  async anyBlind(type: string, param: string, hashes: readonly string[]): Promise<boolean> {
    if (hashes.length === 0) return false;
    const params = new SqlParams();
    const rows = await preparedQuery<{ found: number }>(
      this.unitOfWork.manager,
      `SELECT 1 AS found FROM ${blindProbes(type, param, hashes, params)} LIMIT 1`,
      params.values,
    );
    return rows.length > 0;
  }

  /**
   * Runs the criteria for no rows, in a savepoint: PostgreSQL reads every value (a bad one
   * fails here) and the caller's transaction stays usable whatever happens.
   */
  async probe(where: string, values: unknown[]): Promise<void> {
    await this.unitOfWork.savepoint(() => this.ids(where, values, 0));
  }

  async count(where: string, values: unknown[]): Promise<number> {
    const rows = await preparedQuery<{ n: number }>(
      this.unitOfWork.manager,
      `SELECT count(*)::int AS n FROM resource r WHERE ${where}`,
      values,
    );
    return rows[0]?.n ?? 0;
  }

  /**
   * The patients whose compartment holds what a search counted (by `links`, the parameters that
   * tie the type to a patient, and for Patients themselves), at most `limit`, for the audit
   * row: a count by name or diagnosis tells about them as a list would. Another server's
   * patients (kept by URL) are none of this server's.
   */
  async countedPatients(
    where: string,
    values: unknown[],
    type: string,
    links: readonly string[],
    limit: number,
  ): Promise<string[]> {
    const n = values.length;
    const own =
      type === 'Patient' ? `SELECT r.id AS patient FROM resource r WHERE ${where} UNION ALL ` : '';
    const rows = await preparedQuery<{ patient: string }>(
      this.unitOfWork.manager,
      `SELECT patient FROM (${own}SELECT link.target_id AS patient FROM resource r
         JOIN search_reference link ON link.resource_type = r.resource_type AND link.resource_id = r.id
          AND link.param = ANY($${n + 1}::text[]) AND link.target_type = 'Patient'
          AND strpos(link.target_id, '/') = 0
        WHERE ${where}) counted GROUP BY patient ORDER BY patient LIMIT $${n + 2}`,
      [...values, links, limit],
    );
    return rows.map((row) => row.patient);
  }

  /** Current, not deleted resources by id, decrypted, in the order of `ids`. */
  async load(type: string, ids: readonly string[]): Promise<ResourceEntity[]> {
    if (ids.length === 0) {
      return [];
    }
    const rows = await this.liveResources('r.resource_type = $1 AND r.id = ANY($2::text[])', [
      type,
      ids,
    ]);
    const byId = new Map(rows.map((row) => [row.id, row]));
    return ids.map((id) => byId.get(id)).filter((row): row is ResourceEntity => row !== undefined);
  }

  /** The date ranges a date parameter indexes for these resources, by id. */
  async dateRanges(
    type: string,
    param: string,
    ids: readonly string[],
  ): Promise<Map<string, { low: Date; high: Date }[]>> {
    const rows = await this.unitOfWork.manager.query<
      { resource_id: string; low: Date; high: Date }[]
    >(
      `SELECT resource_id, low, high FROM search_date
        WHERE resource_type = $1 AND param = $2 AND resource_id = ANY($3::text[])`,
      [type, param, ids],
    );
    const byId = new Map<string, { low: Date; high: Date }[]>();
    for (const row of rows) {
      byId.set(row.resource_id, [...(byId.get(row.resource_id) ?? []), row]);
    }
    return byId;
  }

  /**
   * What _include points to, loaded in the same statement as the references: current, not
   * deleted resources only.
   */
  loadTargets(
    sourceType: string,
    sourceIds: readonly string[],
    param: string,
    targetType: string | undefined,
    limit: number,
  ): Promise<ResourceEntity[]> {
    return this.liveResources(
      `(r.resource_type, r.id) IN (
         SELECT target_type, target_id FROM search_reference
         WHERE resource_type = $1 AND resource_id = ANY($2::text[]) AND param = $3
           AND ($4::text IS NULL OR target_type = $4))`,
      [sourceType, sourceIds, param, targetType ?? null],
      limit,
    );
  }

  /**
   * The live resources that refer to a patient through a parameter that puts them in its
   * compartment, each once however many such references it has (an Observation's `subject`
   * and `patient` both point to the patient), updated at `since` or later, not restricted
   * (a list never shows those, see ResourceAccess.isListable): at most `limit`.
   */
  async compartmentMembers(
    patientId: string,
    links: readonly { type: string; param: string }[],
    since: Date | undefined,
    limit: number,
  ): Promise<{ type: string; id: string }[]> {
    if (links.length === 0) {
      return [];
    }
    return this.unitOfWork.manager.query(
      `SELECT s.resource_type AS type, s.resource_id AS id
         FROM search_reference s
         JOIN resource r ON r.resource_type = s.resource_type AND r.id = s.resource_id
        WHERE s.target_type = 'Patient' AND s.target_id = $1
          AND (s.resource_type, s.param) IN (SELECT * FROM unnest($2::text[], $3::text[]))
          AND NOT r.deleted AND ($4::timestamptz IS NULL OR r.last_updated >= $4)
          AND NOT EXISTS (SELECT 1 FROM search_token x
                           WHERE x.resource_type = s.resource_type AND x.resource_id = s.resource_id
                             AND x.param = '_security' AND x.system = $5 AND x.code = ANY($6::text[]))
        GROUP BY s.resource_type, s.resource_id
        LIMIT ${Math.trunc(limit)}`,
      [
        patientId,
        links.map((link) => link.type),
        links.map((link) => link.param),
        since ?? null,
        CONFIDENTIALITY,
        RESTRICTING_CODES,
      ],
    );
  }

  /**
   * Of these resources, those that refer to a patient through a parameter that puts them in its
   * compartment (as compartmentMembers finds them), each once.
   */
  async inCompartment(
    patientId: string,
    links: readonly { type: string; param: string }[],
    resources: readonly { type: string; id: string }[],
  ): Promise<{ type: string; id: string }[]> {
    if (links.length === 0 || resources.length === 0) {
      return [];
    }
    return this.unitOfWork.manager.query(
      `SELECT DISTINCT s.resource_type AS type, s.resource_id AS id
         FROM search_reference s
         JOIN unnest($4::text[], $5::text[]) AS m(type, id)
           ON s.resource_type = m.type AND s.resource_id = m.id
        WHERE s.target_type = 'Patient' AND s.target_id = $1
          AND (s.resource_type, s.param) IN (SELECT * FROM unnest($2::text[], $3::text[]))`,
      [
        patientId,
        links.map((link) => link.type),
        links.map((link) => link.param),
        resources.map((resource) => resource.type),
        resources.map((resource) => resource.id),
      ],
    );
  }

  /**
   * The live resources of `targetTypes` that these resources refer to through any reference
   * parameter, each once, updated at `since` or later, not restricted: at most `limit`. A
   * reference no parameter indexes is not followed, as HAPI follows only its indexed links.
   */
  async referencedBy(
    sources: readonly { type: string; id: string }[],
    targetTypes: readonly string[],
    since: Date | undefined,
    limit: number,
  ): Promise<{ type: string; id: string }[]> {
    if (sources.length === 0 || targetTypes.length === 0) {
      return [];
    }
    return this.unitOfWork.manager.query(
      `SELECT DISTINCT s.target_type AS type, s.target_id AS id
         FROM search_reference s
         JOIN resource r ON r.resource_type = s.target_type AND r.id = s.target_id
        WHERE (s.resource_type, s.resource_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))
          AND s.target_type = ANY($3::text[])
          AND NOT r.deleted AND ($4::timestamptz IS NULL OR r.last_updated >= $4)
          AND NOT EXISTS (SELECT 1 FROM search_token x
                           WHERE x.resource_type = r.resource_type AND x.resource_id = r.id
                             AND x.param = '_security' AND x.system = $5 AND x.code = ANY($6::text[]))
        LIMIT ${Math.trunc(limit)}`,
      [
        sources.map((source) => source.type),
        sources.map((source) => source.id),
        targetTypes,
        since ?? null,
        CONFIDENTIALITY,
        RESTRICTING_CODES,
      ],
    );
  }

  /** Resources of a type that point to the given ones through a parameter (_revinclude). */
  loadSources(
    sourceType: string,
    param: string,
    targetType: string,
    targetIds: readonly string[],
    limit: number,
  ): Promise<ResourceEntity[]> {
    return this.liveResources(
      `(r.resource_type, r.id) IN (
         SELECT resource_type, resource_id FROM search_reference
         WHERE resource_type = $1 AND param = $2 AND target_type = $3
           AND target_id = ANY($4::text[]))`,
      [sourceType, param, targetType, targetIds],
      limit,
    );
  }

  /** Current, not deleted resources meeting a condition on `r`, decrypted. */
  private async liveResources(
    condition: string,
    values: unknown[],
    limit?: number,
  ): Promise<ResourceEntity[]> {
    const rows = await preparedQuery<ResourceRow>(
      this.unitOfWork.manager,
      `SELECT ${RESOURCE_COLUMNS} FROM resource r WHERE ${condition} AND NOT r.deleted${
        limit === undefined ? '' : ` LIMIT ${Math.trunc(limit)}`
      }`,
      values,
    );
    return rows.map((row) => resourceEntityOf(row, this.phi));
  }
}
