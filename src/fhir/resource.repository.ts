import { Injectable, Logger } from '@nestjs/common';
import type { EntityManager, SelectQueryBuilder } from 'typeorm';
import type { AtPeriod, HistoryCursor, HistoryListParams } from './fhir-types.js';
import { ResourceHistoryEntity, type VersionMethod } from './resource-history.entity.js';
import { ResourceEntity } from './resource.entity.js';
import { SECURITY_CONTEXT_PARAM, type IndexRows } from './search/index-rows.js';
import { patientBinariesSql } from './search/patient-binaries.js';
import { INDEX_TABLES, SearchIndexRepository } from './search/search-index.repository.js';
import {
  CONFIDENTIALITY,
  RESTRICTING_CODES,
  type CompartmentScope,
} from '../access/resource-access.js';
import { PhiSubscriber } from '../crypto/phi.subscriber.js';
import { DatabaseClock } from '../database/database-clock.js';
import { sqlStateOf } from '../database/database-unavailable.js';
import { preparedQuery } from '../database/prepared-query.js';
import { UnitOfWork } from '../database/unit-of-work.js';
import { RESOURCE_COLUMNS, resourceEntityOf, type ResourceRow } from './resource-row.js';
import { mapInTurns } from './turns.js';

export interface NextVersion {
  versionId: number;
  lastUpdated: Date;
}

/** A version to write: its JSON and its search index rows. */
export interface RenderedVersion {
  content: string;
  index: IndexRows;
}

/** What a write decides, given the current row: new content, a deletion, or nothing to write. */
export type VersionDecision = RenderedVersion | { deleted: true } | { unchanged: true };

/** The row a write leaves current (none when there was none to keep), and whether it wrote one. */
export type WriteResult =
  | { row: ResourceEntity; created: boolean; changed: boolean }
  | { row: null; created: false; changed: false };

export interface HistoryPage {
  rows: ResourceHistoryEntity[];
  total: number;
}

/**
 * A resource as it stood at an instant (encryptedPageAt), encrypted: its version then, from
 * `resource` when it is still the current one (`current`) and from resource_history otherwise,
 * which its ciphertext is bound to; and, when it changed since, its latest version with content
 * (from resource_history), unless that is `version` itself.
 */
export interface VersionAt {
  version: ResourceEntity | ResourceHistoryEntity;
  current: boolean;
  latest?: ResourceHistoryEntity;
}

interface VersionAtRow {
  id: string;
  versionId: number;
  lastUpdated: Date;
  content: string;
  current: boolean;
  latestVersionId: number | null;
  latestLastUpdated: Date | null;
  latestContent: string | null;
}

export interface HistoryQuery {
  since?: Date;
  at?: AtPeriod[];
  /** Versions older than this one only: where the previous page ended. */
  before?: number;
  limit: number;
}

const WRITE_ATTEMPTS = 3;

/**
 * Creates in one statement from which the tables are analysed after the commit (a transaction
 * Bundle's, an import's batch), and the least time between two such ANALYZEs of one process.
 */
const ANALYZE_AFTER_CREATES = 1000;
const ANALYZE_INTERVAL_MS = 60_000;

/** All SQL for resources and their versions. Knows rows and versions, not FHIR. */
@Injectable()
export class ResourceRepository {
  private readonly logger = new Logger('ResourceRepository');
  /** When this process last started an ANALYZE after a large write, and whether it runs. */
  private analysedAt = Number.NEGATIVE_INFINITY;
  private analysing = false;

  constructor(
    private readonly searchIndex: SearchIndexRepository,
    private readonly unitOfWork: UnitOfWork,
    private readonly phi: PhiSubscriber,
    private readonly clock: DatabaseClock,
  ) {}

  /** The current row, deleted or not: the hottest read, so prepared SQL (resource-row.ts). */
  async findCurrent(resourceType: string, id: string): Promise<ResourceEntity | null> {
    const [row] = await preparedQuery<ResourceRow>(
      this.unitOfWork.manager,
      `SELECT ${RESOURCE_COLUMNS} FROM resource r WHERE r.resource_type = $1 AND r.id = $2`,
      [resourceType, id],
    );
    return row ? resourceEntityOf(row, this.phi) : null;
  }

  /**
   * Each resource's latest version with content: the current one, or for a deleted resource
   * the one before its deletion. Its security labels say whether the record is restricted now.
   */
  latestLive(resources: { type: string; id: string }[]): Promise<ResourceHistoryEntity[]> {
    if (resources.length === 0) return Promise.resolve([]);
    return this.unitOfWork.manager
      .createQueryBuilder(ResourceHistoryEntity, 'h')
      .distinctOn(['h.resource_type', 'h.id'])
      .where('NOT h.deleted')
      .andWhere(
        '(h.resource_type, h.id) IN (SELECT * FROM unnest(CAST(:types AS text[]), CAST(:ids AS text[])))',
        { types: resources.map((r) => r.type), ids: resources.map((r) => r.id) },
      )
      .orderBy('h.resource_type')
      .addOrderBy('h.id')
      .addOrderBy('h.version_id', 'DESC')
      .getMany();
  }

  /** Of these resources, the ones deleted now, as `Type/id`. */
  async deletedAmong(resources: { type: string; id: string }[]): Promise<Set<string>> {
    if (resources.length === 0) return new Set();
    const rows = await this.unitOfWork.manager.query<{ resource_type: string; id: string }[]>(
      `SELECT r.resource_type, r.id
         FROM resource r
         JOIN unnest($1::text[], $2::text[]) AS t(type, id)
           ON r.resource_type = t.type AND r.id = t.id
        WHERE r.deleted`,
      [resources.map((r) => r.type), resources.map((r) => r.id)],
    );
    return new Set(rows.map((row) => `${row.resource_type}/${row.id}`));
  }

  findVersion(
    resourceType: string,
    id: string,
    versionId: number,
  ): Promise<ResourceHistoryEntity | null> {
    return this.unitOfWork.manager.findOneBy(ResourceHistoryEntity, {
      resourceType,
      id,
      versionId,
    });
  }

  /**
   * Of these versions, the ones stored with content (not a deletion), as `Type/id/_history/vid`.
   * A version is never changed once written, so none needs a lock.
   */
  async storedVersions(
    versions: { type: string; id: string; versionId: number }[],
  ): Promise<Set<string>> {
    if (versions.length === 0) return new Set();
    const rows = await this.unitOfWork.manager.query<
      { resource_type: string; id: string; version_id: number }[]
    >(
      `SELECT h.resource_type, h.id, h.version_id
         FROM resource_history h
         JOIN unnest($1::text[], $2::text[], $3::int[]) AS v(type, id, version_id)
           ON h.resource_type = v.type AND h.id = v.id AND h.version_id = v.version_id
        WHERE NOT h.deleted`,
      [versions.map((v) => v.type), versions.map((v) => v.id), versions.map((v) => v.versionId)],
    );
    return new Set(rows.map((row) => `${row.resource_type}/${row.id}/_history/${row.version_id}`));
  }

  /**
   * Of these resources, the ones that exist and are not deleted, as `Type/id`, each locked FOR
   * KEY SHARE until commit: a delete of one (whose row lock conflicts) waits for the caller to
   * commit, and a caller that comes after a delete finds the row deleted. In a fixed order, so
   * two callers locking the same rows cannot deadlock on each other.
   */
  async lockLive(targets: { type: string; id: string }[]): Promise<Set<string>> {
    const rows = await this.lockedLive<{ resource_type: string; id: string }>(
      'r.resource_type, r.id',
      targets,
    );
    return new Set(rows.map((row) => `${row.resource_type}/${row.id}`));
  }

  /**
   * lockLive's rows with their content, of any types (lockLiveRows reads one type's): for a
   * check that must read what a reference names, in the statement that locks it.
   */
  async lockLiveContents(targets: { type: string; id: string }[]): Promise<ResourceEntity[]> {
    if (targets.length === 0) return [];
    const rows = await this.lockedLive<ResourceRow>(RESOURCE_COLUMNS, targets);
    return rows.map((row) => resourceEntityOf(row, this.phi));
  }

  /** The `columns` of the live rows of `targets`, locked as lockLive says. */
  private lockedLive<T>(columns: string, targets: { type: string; id: string }[]): Promise<T[]> {
    return this.unitOfWork.manager.query<T[]>(
      `SELECT ${columns}
         FROM resource r
         JOIN unnest($1::text[], $2::text[]) AS t(type, id)
           ON r.resource_type = t.type AND r.id = t.id
        WHERE NOT r.deleted
        ORDER BY r.resource_type, r.id
        FOR KEY SHARE OF r`,
      [targets.map((t) => t.type), targets.map((t) => t.id)],
    );
  }

  /**
   * The current row, as findCurrent reads it, locked FOR UPDATE until commit as
   * lockAgainstReferences locks it: for a use case that checks the resource before it deletes
   * what refers to it (a cascading delete), in one statement and on the version it will delete.
   */
  async findCurrentAgainstReferences(
    resourceType: string,
    id: string,
  ): Promise<ResourceEntity | null> {
    const [row] = await preparedQuery<ResourceRow>(
      this.unitOfWork.manager,
      `SELECT ${RESOURCE_COLUMNS} FROM resource r WHERE r.resource_type = $1 AND r.id = $2
        FOR UPDATE OF r`,
      [resourceType, id],
    );
    return row ? resourceEntityOf(row, this.phi) : null;
  }

  /**
   * Locks the resource's row FOR UPDATE until commit, if it exists: a transaction that locked
   * it FOR KEY SHARE (a reference to it, lockLive) is waited for, and one that comes after
   * waits for this one. Plain updates of it wait too, as they wait for any update of it.
   */
  async lockAgainstReferences(resourceType: string, id: string): Promise<void> {
    await this.unitOfWork.manager.query(
      'SELECT 1 FROM resource r WHERE r.resource_type = $1 AND r.id = $2 FOR UPDATE OF r',
      [resourceType, id],
    );
  }

  /**
   * The current rows of these resources of one type that exist and are not deleted, each
   * locked FOR KEY SHARE until commit (as lockLive locks them) and read with the lock: a row
   * that a transaction holding it FOR UPDATE changed is waited for and read as it committed.
   */
  async lockLiveRows(resourceType: string, ids: string[]): Promise<ResourceEntity[]> {
    if (ids.length === 0) return [];
    const rows = await preparedQuery<ResourceRow>(
      this.unitOfWork.manager,
      `SELECT ${RESOURCE_COLUMNS} FROM resource r
        WHERE r.resource_type = $1 AND r.id = ANY($2::text[]) AND NOT r.deleted
        ORDER BY r.id
        FOR KEY SHARE OF r`,
      [resourceType, [...ids].sort()],
    );
    return rows.map((row) => resourceEntityOf(row, this.phi));
  }

  /**
   * The latest instant up to which every version is committed and readable: now, or the start of
   * the oldest transaction still open in another session (of any instance), less one millisecond (a
   * version's lastUpdated may fall in the millisecond its transaction began, and `$export?_since`
   * takes what changed after it, not at it). A version's lastUpdated is taken inside its
   * transaction, before it commits, by the database's clock (DatabaseClock); a transaction Bundle's
   * or a feed message's may commit seconds later, with versions stamped earlier than anything read
   * meanwhile. A client that syncs `_since` this instant misses none of them (it may see some
   * twice). Sessions of other database roles show no start without pg_read_all_stats, so every
   * instance and the CLI connect as one role (README, Running several instances). Every open
   * transaction counts: which will write is not known, and so does each statement of a search while
   * it runs: a poll may see more repeats, none fewer.
   */
  async completeUpTo(): Promise<Date> {
    const [row] = await this.unitOfWork.manager.query<{ at: Date }[]>(
      `SELECT date_trunc('milliseconds', least(statement_timestamp(), min(xact_start)))
              - interval '1 millisecond' AS at
         FROM pg_stat_activity
        WHERE datname = current_database() AND backend_type = 'client backend'
          AND pid <> pg_backend_pid() AND xact_start IS NOT NULL`,
    );
    return row!.at;
  }

  /**
   * Serializes transactions working on the same keys (conditional criteria, see CriteriaLocks)
   * until they commit, shared keys only against exclusive ones. Taken in the order given, one
   * statement for them all: a sorted subquery (OFFSET 0 keeps it from being flattened) feeds
   * the aggregate row by row. Runs in the current transaction; the caller is inside
   * UnitOfWork.run.
   */
  async lockCriteria(locks: readonly { id: bigint; shared: boolean }[]): Promise<void> {
    if (locks.length === 0) return;
    await this.unitOfWork.manager.query(
      `SELECT count(CASE WHEN l.shared THEN pg_advisory_xact_lock_shared(l.id)
                         ELSE pg_advisory_xact_lock(l.id) END)
         FROM (SELECT id, shared, ord FROM unnest($1::bigint[], $2::boolean[])
                 WITH ORDINALITY AS u(id, shared, ord)
                ORDER BY ord OFFSET 0) l`,
      [locks.map((l) => l.id.toString()), locks.map((l) => l.shared)],
    );
  }

  /**
   * Inserts version 1 of resources whose ids were just generated, so no row can exist yet: one
   * statement however many there are (history rows, current rows and index rows, each table a
   * data-modifying CTE inserting from arrays). Round trips are most of a create's cost.
   * `method`: what created them, a POST unless an update did (update-as-create).
   */
  async insertFirst(
    items: { resourceType: string; id: string; render: (next: NextVersion) => RenderedVersion }[],
    method: 'POST' | 'PUT' = 'POST',
  ): Promise<ResourceEntity[]> {
    if (items.length === 0) return [];
    return this.unitOfWork.run(async (manager) => {
      const next = { versionId: 1, lastUpdated: this.clock.now() };
      // Indexing and serialising thousands (a Bundle's creates) in turns, not in one block.
      const written = await mapInTurns(items, ({ resourceType, id, render }) => {
        const { content, index } = render(next);
        return { row: { resourceType, id, ...next, deleted: false, content }, index };
      });
      const values: unknown[] = [];
      const ctes = [
        await this.versionRows(manager, 'h', ResourceHistoryEntity, written, values, method),
        await this.versionRows(manager, 'r', ResourceEntity, written, values),
        ...(await this.searchIndex.insertions(
          written.flatMap(({ row, index }) =>
            index
              ? [{ resourceType: row.resourceType, resourceId: row.id, rows: index, version: next }]
              : [],
          ),
          values,
        )),
      ];
      await manager.query(`WITH ${ctes.join(', ')} SELECT 1`, values);
      if (items.length >= ANALYZE_AFTER_CREATES)
        this.unitOfWork.afterCommit(() => this.analyseSoon());
      return written.map(({ row }) => manager.create(ResourceEntity, row));
    });
  }

  /**
   * A CTE inserting the rows into a version table, PHI encrypted for that table; with the
   * method that wrote them, for resource_history.
   */
  private async versionRows(
    manager: EntityManager,
    name: string,
    target: typeof ResourceEntity | typeof ResourceHistoryEntity,
    written: { row: ResourceEntity }[],
    values: unknown[],
    method?: VersionMethod,
  ): Promise<string> {
    const table = manager.connection.getMetadata(target).tableName;
    const rows = await mapInTurns(written, ({ row }) =>
      this.phi.encrypted<ResourceEntity>(target, row),
    );
    const columns: [string, string, (row: ResourceEntity) => unknown][] = [
      ['resource_type', 'text', (row) => row.resourceType],
      ['id', 'text', (row) => row.id],
      ['version_id', 'integer', (row) => row.versionId],
      ['last_updated', 'timestamptz', (row) => row.lastUpdated.toISOString()],
      ['deleted', 'boolean', (row) => row.deleted],
      ['content', 'text', (row) => row.content],
    ];
    if (method) columns.push(['method', 'text', () => method]);
    const arrays = columns.map(([, type, value]) => {
      values.push(rows.map(value));
      return `$${values.length}::${type}[]`;
    });
    return `${name} AS (INSERT INTO "${table}" (${columns.map(([column]) => column).join(', ')})
       SELECT * FROM unnest(${arrays.join(', ')}))`;
  }

  /**
   * Writes the next version of a resource under a row lock, so concurrent writers are serialized
   * and version numbers never repeat. `decide` sees the current row (or null) and may throw.
   * Returns the row as written, or the current row when `decide` says nothing changed.
   * `method`: the interaction writing it, which its history entry states.
   */
  async writeNext(
    resourceType: string,
    id: string,
    method: 'PUT' | 'PATCH' | 'DELETE',
    decide: (
      current: ResourceEntity | null,
      next: NextVersion,
    ) => VersionDecision | Promise<VersionDecision>,
  ): Promise<WriteResult> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.unitOfWork.run((manager) =>
          // Inside an enclosing transaction (the request's, or a Bundle's) a failed statement
          // would abort everything; a savepoint lets the losing writer of a race retry in it.
          this.unitOfWork.savepoint(() =>
            this.writeNextIn(manager, resourceType, id, method, decide),
          ),
        );
      } catch (error) {
        // Two first writes of the same client-chosen id race on the primary key: the loser
        // retries and then sees the winner's row under the lock.
        if (attempt < WRITE_ATTEMPTS && error instanceof FirstWriteRaced) {
          continue;
        }
        throw error;
      }
    }
  }

  /**
   * A page of one resource's versions, newest first, before a version (keyset: the primary key
   * seeks it), and how many versions match in all, the page's and earlier ones' alike.
   */
  async historyOf(resourceType: string, id: string, query: HistoryQuery): Promise<HistoryPage> {
    const builder = this.unitOfWork.manager
      .createQueryBuilder(ResourceHistoryEntity, 'h')
      .where('h.resource_type = :type AND h.id = :id', { type: resourceType, id });
    if (query.since) {
      builder.andWhere('h.last_updated >= :since', { since: query.since });
    }
    whereCurrentAt(builder, query.at);
    const total = await builder.clone().getCount();
    if (query.before !== undefined) {
      builder.andWhere('h.version_id < :before', { before: query.before });
    }
    const rows = await builder.orderBy('h.version_id', 'DESC').limit(query.limit).getMany();
    return { rows, total };
  }

  /**
   * Which of these versions were written right after a deletion of their resource (as
   * `Type/id/version`): a PUT that wrote one created the resource again, and was answered 201.
   * Read from the deletion rather than kept with the version, so versions written before
   * 2026-12-05 are told apart too.
   */
  async recreations(rows: readonly ResourceHistoryEntity[]): Promise<Set<string>> {
    const candidates = rows.filter((row) => !row.deleted && row.versionId > 1);
    if (candidates.length === 0) {
      return new Set();
    }
    const found = await this.unitOfWork.manager.query<
      { resource_type: string; id: string; version_id: number }[]
    >(
      `SELECT resource_type, id, version_id FROM resource_history
        WHERE (resource_type, id, version_id) IN
              (SELECT * FROM unnest($1::text[], $2::text[], $3::int[]))
          AND deleted`,
      [
        candidates.map((row) => row.resourceType),
        candidates.map((row) => row.id),
        candidates.map((row) => row.versionId - 1),
      ],
    );
    return new Set(found.map((row) => `${row.resource_type}/${row.id}/${row.version_id + 1}`));
  }

  /**
   * Versions of every resource of these types, newest first (ties by type, id and version),
   * after the cursor: `count + 1` at most, so the caller knows whether there are more, each
   * with its cursor. No total: it would count every version there is. `scope`: a
   * patient-scoped token's (see CompartmentScope), whose records the SQL leaves out by their
   * search index, so that a page is not read, decrypted and dropped row by row; and which it
   * reads from the patient's own records (see scopedPageKeys), never the others'.
   */
  async historyOfTypes(
    resourceTypes: string[],
    query: HistoryListParams,
    scope?: CompartmentScope,
  ): Promise<{ row: ResourceHistoryEntity; cursor: HistoryCursor }[]> {
    // One type reads (resource_type, last_updated, id, version_id), several the index that
    // starts with last_updated; the cursor is one row comparison either index seeks.
    const single = resourceTypes.length === 1;
    const builder = this.unitOfWork.manager
      .createQueryBuilder(ResourceHistoryEntity, 'h')
      .addSelect('h.last_updated::text', 'h_key');
    const conditions: string[] = [];
    if (query.since) {
      conditions.push('h.last_updated >= :since');
      builder.setParameter('since', query.since);
    }
    conditions.push(...currentAtConditions(builder, query.at));
    if (query.cursor) {
      const { lastUpdated, type, id, versionId } = query.cursor;
      conditions.push(
        single
          ? '(h.last_updated, h.id, h.version_id) < (CAST(:lastUpdated AS timestamptz), :id, :versionId)'
          : '(h.last_updated, h.resource_type, h.id, h.version_id) < (CAST(:lastUpdated AS timestamptz), :afterType, :id, :versionId)',
        // The same, that an index of (resource_type, last_updated) seeks.
        'h.last_updated <= CAST(:lastUpdated AS timestamptz)',
      );
      builder.setParameters({ lastUpdated, afterType: type, id, versionId });
    }
    const scoped = scope ? scopedTypesOf(scope) : [];
    if (scope && scoped.length > 0) {
      const keys = scopedPageKeys(
        builder,
        scope,
        resourceTypes.filter((type) => !scoped.includes(type)),
        conditions,
        query.count + 1,
      );
      // The page's keys once (a materialized CTE), and its versions read by them through the
      // primary key, which the arrays of types and ids seek: joined by IN alone, the planner
      // read every version by a scan of a small table (373 rows for a page of 2).
      builder.addCommonTableExpression(keys, 'page_keys', { materialized: true }).where(
        `h.resource_type = ANY(ARRAY(SELECT k.resource_type FROM page_keys k))
            AND h.id = ANY(ARRAY(SELECT k.id FROM page_keys k))
            AND (h.resource_type, h.id, h.version_id) IN (SELECT * FROM page_keys)`,
      );
    } else {
      if (single) {
        builder.where('h.resource_type = :type', { type: resourceTypes[0] });
      } else {
        builder.where('h.resource_type = ANY(:types)', { types: resourceTypes });
      }
      for (const condition of conditions) builder.andWhere(condition);
    }
    builder.orderBy('h.last_updated', 'DESC');
    if (!single) builder.addOrderBy('h.resource_type', 'DESC');
    const { entities, raw } = await builder
      .addOrderBy('h.id', 'DESC')
      .addOrderBy('h.version_id', 'DESC')
      .limit(query.count + 1)
      .getRawAndEntities<{ h_key: string }>();
    return entities.map((row, i) => ({
      row,
      cursor: {
        lastUpdated: raw[i]!.h_key,
        type: row.resourceType,
        id: row.id,
        versionId: row.versionId,
      },
    }));
  }

  private async writeNextIn(
    manager: EntityManager,
    resourceType: string,
    id: string,
    method: 'PUT' | 'PATCH' | 'DELETE',
    decide: (
      current: ResourceEntity | null,
      next: NextVersion,
    ) => VersionDecision | Promise<VersionDecision>,
  ): Promise<WriteResult> {
    // Every write referring to the resource holds its row FOR KEY SHARE until it commits (see
    // lockLive). Only a delete must wait for those: it would leave them referring to nothing.
    // An update (its key unchanged) takes FOR NO KEY UPDATE, which they do not block: with
    // FOR UPDATE, a long transaction referring to a patient (a Synthea Bundle, an ORU) held
    // every update of the patient until it committed, and two Bundles each updating a patient
    // the other referred to deadlocked (14 of 16 were a 503).
    const current = await manager.findOne(ResourceEntity, {
      where: { resourceType, id },
      lock: { mode: method === 'DELETE' ? 'pessimistic_write' : 'for_no_key_update' },
    });
    const next = { versionId: (current?.versionId ?? 0) + 1, lastUpdated: this.clock.now() };
    const decision = await decide(current, next);
    if ('unchanged' in decision) {
      return current
        ? { row: current, created: false, changed: false }
        : { row: null, created: false, changed: false };
    }
    const content = 'content' in decision ? decision.content : null;
    const row = { resourceType, id, ...next, deleted: content === null, content };
    // With no row to lock, a concurrent first write of the same id may have inserted version 1
    // already: ON CONFLICT waits for it and inserts nothing, where a plain insert would fail
    // with a unique violation that the query logger reports at error level, for a race that is
    // expected and handled. (Copied: the PHI subscriber encrypts the values it is given.)
    const inserted = await manager
      .createQueryBuilder()
      .insert()
      .into(ResourceHistoryEntity)
      .values({ ...row, method })
      .orIgnore()
      .returning(['versionId'])
      .updateEntity(false)
      .execute();
    if ((inserted.raw as unknown[]).length === 0) {
      throw new FirstWriteRaced();
    }
    if (current) {
      // The key is left out of the SET: naming it (as upsert does, even unchanged) makes
      // PostgreSQL lock the row FOR UPDATE, which waits for every referrer's KEY SHARE.
      const stored = this.phi.encrypted(ResourceEntity, { ...row });
      await manager.query(
        `UPDATE resource SET version_id = $3, last_updated = $4, deleted = $5, content = $6
          WHERE resource_type = $1 AND id = $2`,
        [resourceType, id, stored.versionId, stored.lastUpdated, stored.deleted, stored.content],
      );
    } else {
      await manager.insert(ResourceEntity, { ...row });
    }
    // The index describes the current version only; a deletion leaves none.
    await this.searchIndex.replace(
      manager,
      resourceType,
      id,
      'index' in decision ? decision.index : null,
      next,
    );
    return {
      row: manager.create(ResourceEntity, row),
      created: current === null || current.deleted,
      changed: true,
    };
  }

  /**
   * A page of a type's resources as they stood at `at` (a Bulk Data export's transactionTime),
   * in id order after `after`: each one's latest version written up to then, unless that is a
   * deletion (or there is none: created since), and only if it was written after `since`. The
   * rows are as stored (content still encrypted), so that the caller decrypts them one by one
   * (PhiSubscriber.decrypted) and goes on past one that fails.
   *
   * Keyset paging on `resource`'s primary key, as before versions mattered: a resource unchanged
   * since `at` is its own current row (no history read); one changed since (updated, deleted,
   * re-created) costs two probes of resource_history's primary key, for the version then and for
   * the latest version with content, which says whether the record is restricted now.
   */
  async encryptedPageAt(
    type: string,
    after: string,
    changed: { since?: Date; at: Date },
    limit: number,
  ): Promise<VersionAt[]> {
    const rows = await this.unitOfWork.manager.query<VersionAtRow[]>(
      // Each branch of `v` and `l` is gated on the row alone (a one-time filter), so PostgreSQL
      // runs a history probe only for a resource changed since $4. r.last_updated > $3 repeats
      // v's bound (no version is newer than the current row) to skip rows before any probe.
      `SELECT r.id, v.version_id AS "versionId", v.last_updated AS "lastUpdated", v.content,
              v.current, l.version_id AS "latestVersionId",
              l.last_updated AS "latestLastUpdated", l.content AS "latestContent"
         FROM resource r
        CROSS JOIN LATERAL (
                SELECT r.version_id, r.last_updated, r.deleted, r.content, true AS current
                 WHERE r.last_updated <= $4
                UNION ALL
               (SELECT h.version_id, h.last_updated, h.deleted, h.content, false
                  FROM resource_history h
                 WHERE r.last_updated > $4
                   AND h.resource_type = r.resource_type AND h.id = r.id AND h.last_updated <= $4
                 ORDER BY h.version_id DESC
                 LIMIT 1)) v
         LEFT JOIN LATERAL (
               SELECT h.version_id, h.last_updated, h.content
                 FROM resource_history h
                WHERE NOT v.current
                  AND h.resource_type = r.resource_type AND h.id = r.id
                  AND h.version_id > v.version_id AND NOT h.deleted
                ORDER BY h.version_id DESC
                LIMIT 1) l ON true
        WHERE r.resource_type = $1 AND r.id > $2 AND (NOT r.deleted OR r.last_updated > $4)
          AND ($3::timestamptz IS NULL OR r.last_updated > $3)
          AND NOT v.deleted AND ($3::timestamptz IS NULL OR v.last_updated > $3)
        ORDER BY r.id
        LIMIT $5`,
      [type, after, changed.since ?? null, changed.at, limit],
    );
    return rows.map((row) => {
      const version = { resourceType: type, id: row.id, deleted: false };
      return {
        version: {
          ...version,
          versionId: row.versionId,
          lastUpdated: row.lastUpdated,
          content: row.content,
        },
        current: row.current,
        ...(row.latestVersionId !== null
          ? {
              latest: {
                ...version,
                versionId: row.latestVersionId,
                lastUpdated: row.latestLastUpdated!,
                content: row.latestContent,
                method: null,
              },
            }
          : {}),
      };
    });
  }

  /**
   * The types that may have had a live resource at `at`: those with one live now, or with one
   * deleted since. Each half reads an index (the live ids, and the versions since `at`).
   */
  async typesLiveAt(at: Date): Promise<string[]> {
    const rows = await this.unitOfWork.manager.query<{ resource_type: string }[]>(
      `SELECT resource_type FROM resource WHERE NOT deleted
       UNION
       SELECT resource_type FROM resource_history WHERE deleted AND last_updated > $1
       ORDER BY resource_type`,
      [at],
    );
    return rows.map((row) => row.resource_type);
  }

  /**
   * Refreshes the planner's statistics of the resource and index tables, after a bulk load:
   * until autovacuum gets to it, PostgreSQL plans searches for the tables as they were.
   */
  /**
   * analyze() beside the request that wrote many resources, once they have committed: until
   * autovacuum gets to them (a minute at best, never where it is off), searches of 20,000 new
   * Observations took 6 to 9 s rather than 80 ms. At most one at a time and one a minute per
   * process; a failure is logged (its SQLSTATE, never a value) and autovacuum remains.
   */
  private analyseSoon(): void {
    const now = Date.now();
    if (this.analysing || now - this.analysedAt < ANALYZE_INTERVAL_MS) return;
    this.analysing = true;
    this.analysedAt = now;
    this.analyze()
      .catch((error: unknown) => {
        this.logger.warn(
          `ANALYZE after a large write failed (${sqlStateOf(error) ?? 'no SQLSTATE'})`,
        );
      })
      .finally(() => {
        this.analysing = false;
      });
  }

  async analyze(): Promise<void> {
    const manager = this.unitOfWork.manager;
    const tables = [ResourceEntity, ResourceHistoryEntity].map(
      (target) => manager.connection.getMetadata(target).tableName,
    );
    await manager.query(`ANALYZE ${[...tables, ...INDEX_TABLES].map((t) => `"${t}"`).join(', ')}`);
  }
}

/** Another writer stored version 1 of the id first: the write is retried, and then updates it. */
class FirstWriteRaced extends Error {
  constructor() {
    super('A concurrent write created the resource first');
  }
}

/**
 * `_at`: a version is current from its own time until the next version's (or for ever, for the
 * last one), and is kept when that interval meets the period: starts before the period ends and
 * ends after it starts. A deletion is a version like any other: it says the resource was gone.
 */
function whereCurrentAt(
  builder: SelectQueryBuilder<ResourceHistoryEntity>,
  periods: AtPeriod[] | undefined,
): void {
  for (const condition of currentAtConditions(builder, periods)) builder.andWhere(condition);
}

/** whereCurrentAt's conditions, as SQL of `h` whose parameters are set on the builder. */
function currentAtConditions(
  builder: SelectQueryBuilder<ResourceHistoryEntity>,
  periods: AtPeriod[] | undefined,
): string[] {
  const until = `COALESCE((SELECT min(n.last_updated) FROM resource_history n
      WHERE n.resource_type = h.resource_type AND n.id = h.id AND n.version_id > h.version_id),
    'infinity'::timestamptz)`;
  return (periods ?? []).map((period, i) => {
    const low = `at_low_${i}`;
    const high = `at_high_${i}`;
    const condition = {
      eq: `h.last_updated < :${high} AND ${until} > :${low}`,
      ge: `${until} > :${low}`,
      gt: `${until} > :${high}`,
      le: `h.last_updated < :${high}`,
      lt: `h.last_updated < :${low}`,
    }[period.prefix];
    builder.setParameters({ [low]: period.low, [high]: period.high });
    return `(${condition})`;
  });
}

/** The types whose records a scope's SQL judges: those it links to patients, `none`, Binary. */
function scopedTypesOf(scope: CompartmentScope): string[] {
  return [
    ...scope.linked.map((link) => link.type),
    ...scope.none,
    ...(scope.binaries ? ['Binary'] : []),
  ];
}

/**
 * The keys of a page of versions (`limit` at most, in historyOfTypes' order) that a
 * patient-scoped token may list of these types (see CompartmentScope), `conditions` (of `h`)
 * met. Records of the scope's types are listed while, as they are now, they are live, in its
 * patient's compartment by the search index (written with each version, in its transaction),
 * and not restricted. Their versions are read a type at a time from the patient's own, newest
 * first (resource_history_patient, written with each version's index rows), each checked
 * against the record as it is now, and reading stops at the page: until 2026-12-07 every one of
 * the patient's records was read (its index rows, then its versions by its key) for every page,
 * 60,000 versions and 120,000 index rows for a page of 50 of a patient with 60,000 Observations
 * (1.2 s). Before that, a scan of the versions by time read every other patient's too, until
 * SEARCH_TIMEOUT_MS cancelled it. The Patient itself is read by its key, and Binaries by their
 * securityContext (patientBinariesSql), each record's versions through its key. The records of
 * `open` types (shared ones) are read a type at a time through (resource_type, last_updated): no
 * other type's rows.
 */
function scopedPageKeys(
  builder: SelectQueryBuilder<ResourceHistoryEntity>,
  scope: CompartmentScope,
  open: string[],
  conditions: string[],
  limit: number,
): string {
  const links = scope.linked.flatMap(({ type, params }) =>
    params.map((param) => ({ type, param })),
  );
  // A member list (a Group, see MEMBER_LISTS) that names another patient too.
  const namesAnother = (c: string) => `EXISTS (SELECT 1 FROM search_reference p
      WHERE p.resource_type = ${c}.resource_type AND p.resource_id = ${c}.id
        AND (p.resource_type, p.param) IN
            (SELECT * FROM unnest(CAST(:scopeLinkTypes AS text[]), CAST(:scopeLinkParams AS text[])))
        AND p.target_type = 'Patient' AND p.target_id <> :scopePatient)`;
  // Not restricted, and not a member list naming another patient.
  const listable = (c: string) => `NOT EXISTS (SELECT 1 FROM search_token x
                       WHERE x.resource_type = ${c}.resource_type AND x.resource_id = ${c}.id
                         AND x.param = '_security' AND x.system = :confidentiality
                         AND x.code = ANY(CAST(:restricting AS text[])))
      AND (${c}.resource_type <> ALL(CAST(:soleTypes AS text[])) OR NOT ${namesAnother(c)})`;
  // In the patient's compartment now: an index row points at it by a parameter of its type's
  // compartment (read by idx_search_reference_lookup, one probe). OFFSET 0 keeps it a probe per
  // version read: made a semi-join, on a table without statistics (a fresh or new database),
  // it read every index row naming the patient (6,735 for a page of 2).
  const inCompartment = `EXISTS (SELECT 1 FROM search_reference p
      WHERE p.target_id = :scopePatient AND p.target_type = 'Patient'
        AND p.resource_type = h.resource_type AND p.resource_id = h.id
        AND (p.resource_type, p.param) IN
            (SELECT * FROM unnest(CAST(:scopeLinkTypes AS text[]), CAST(:scopeLinkParams AS text[])))
      OFFSET 0)`;
  // The Patient itself, and the Binaries that may be the patient's, each once.
  const records = `SELECT c.resource_type, c.id FROM (
      SELECT r.resource_type, r.id FROM resource r
       WHERE r.resource_type = 'Patient' AND r.id = :scopePatient AND NOT r.deleted
         AND 'Patient' = ANY(CAST(:scopedTypes AS text[]))${
           scope.binaries
             ? `
      UNION
      ${patientBinariesSql({
        patient: ':scopePatient',
        contextParam: ':contextParam',
        linkTypes: ':contextTypes',
        linkParams: ':contextParams',
      })}`
             : ''
         }) c
    WHERE ${listable('c')}`;
  const where = conditions.map((condition) => ` AND ${condition}`).join('');
  builder.setParameters({
    scopedTypes: scopedTypesOf(scope),
    linkedTypes: scope.linked.map((link) => link.type),
    openTypes: open,
    confidentiality: CONFIDENTIALITY,
    restricting: RESTRICTING_CODES,
    scopePatient: scope.patient,
    scopeLinkTypes: links.map((link) => link.type),
    scopeLinkParams: links.map((link) => link.param),
    soleTypes: scope.linked.filter((link) => link.sole).map((link) => link.type),
    pageLimit: limit,
  });
  if (scope.binaries) {
    const { contextLinks } = scope.binaries;
    builder.setParameters({
      contextParam: SECURITY_CONTEXT_PARAM,
      contextTypes: contextLinks.map((link) => link.type),
      contextParams: contextLinks.map((link) => link.param),
    });
  }
  // LATERAL, so that the plan starts from the patient, its records and the types, whatever the
  // planner estimates; each part reads `limit` versions at most, as does the page.
  return `SELECT v.resource_type, v.id, v.version_id FROM (
      SELECT h.resource_type, h.id, h.version_id, h.last_updated
        FROM unnest(CAST(:linkedTypes AS text[])) AS t(resource_type)
        CROSS JOIN LATERAL (
          SELECT h.resource_type, h.id, h.version_id, h.last_updated
            FROM resource_history_patient h
           WHERE h.patient_id = :scopePatient AND h.resource_type = t.resource_type${where}
             AND ${inCompartment} AND ${listable('h')}
           ORDER BY h.last_updated DESC, h.id DESC, h.version_id DESC LIMIT :pageLimit) h
      UNION ALL
      SELECT h.resource_type, h.id, h.version_id, h.last_updated
        FROM (${records}) c
        CROSS JOIN LATERAL (
          SELECT h.resource_type, h.id, h.version_id, h.last_updated FROM resource_history h
           WHERE h.resource_type = c.resource_type AND h.id = c.id${where}
           ORDER BY h.last_updated DESC, h.version_id DESC LIMIT :pageLimit) h
      UNION ALL
      SELECT h.resource_type, h.id, h.version_id, h.last_updated
        FROM unnest(CAST(:openTypes AS text[])) AS t(resource_type)
        CROSS JOIN LATERAL (
          SELECT h.resource_type, h.id, h.version_id, h.last_updated FROM resource_history h
           WHERE h.resource_type = t.resource_type${where}
           ORDER BY h.last_updated DESC, h.id DESC, h.version_id DESC LIMIT :pageLimit) h
    ) v
    ORDER BY v.last_updated DESC, v.resource_type DESC, v.id DESC, v.version_id DESC
    LIMIT :pageLimit`;
}
