import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { DataSource, EntityManager } from 'typeorm';
import {
  contentHash,
  storableEntry,
  type AuditEntry,
  type ChainedAuditEntry,
} from './audit-record.js';

const COLUMNS: readonly [keyof ChainedAuditEntry, string][] = [
  ['chainSeq', 'chain_seq'],
  ['id', 'id'],
  ['recordedAt', 'recorded_at'],
  ['source', 'source'],
  ['requestId', 'request_id'],
  ['actorUserId', 'actor_user_id'],
  ['actorName', 'actor_name'],
  ['actorRoles', 'actor_roles'],
  ['actorScope', 'actor_scope'],
  ['breakGlass', 'break_glass'],
  ['sourceIp', 'source_ip'],
  ['userAgent', 'user_agent'],
  ['action', 'action'],
  ['subtype', 'subtype'],
  ['method', 'method'],
  ['route', 'route'],
  ['resourceType', 'resource_type'],
  ['resourceId', 'resource_id'],
  ['resourceVersion', 'resource_version'],
  ['patientIds', 'patient_ids'],
  ['entities', 'entities'],
  ['queryParams', 'query_params'],
  ['outcome', 'outcome'],
  ['statusCode', 'status_code'],
  ['detail', 'detail'],
  ['prevHash', 'prev_hash'],
  ['hash', 'hash'],
];

const SELECT_LIST = COLUMNS.map(([, column]) => `"${column}"`).join(', ');
/** What the application supplies; audit_append adds chain_seq, prev_hash and hash. */
const CONTENT_COLUMNS = COLUMNS.filter(
  (column): column is [keyof AuditEntry, string] =>
    !['chainSeq', 'prevHash', 'hash'].includes(column[0]),
);

/**
 * The statement that appends entries (see AuditRepository.append): each entry as audit_append()
 * reads it, with the SHA-256 of its canonical form. Exported for the benchmark's baseline.
 */
export function appendStatement(
  entries: readonly AuditEntry[],
  lockTimeoutMs?: number,
): {
  text: string;
  values: string[];
} {
  // A plain loop: spreading Object.fromEntries of a mapped array of pairs took about 8 times as
  // long, on every audited request.
  const records = entries.map((given) => {
    const entry = storableEntry(given);
    const record: Record<string, unknown> = {};
    for (const [field, column] of CONTENT_COLUMNS) record[column] = entry[field];
    record['content_hash'] = contentHash(entry);
    return record;
  });
  if (lockTimeoutMs === undefined) {
    return {
      text: 'SELECT audit_append($1::jsonb) AS queued',
      values: [JSON.stringify(records)],
    };
  }
  // The rows are linked at COMMIT (a deferred trigger), where statement_timeout no longer
  // runs: a lock held on the chain or on audit_event would hold the commit, and its request,
  // for as long as it is held. lock_timeout does run there; set for the rest of the
  // transaction (is_local), it bounds the link's every lock wait, and the rows' transaction,
  // the write's included, rolls back when one runs out. One statement: no extra round trip.
  return {
    text: `SELECT audit_append($1::jsonb) AS queued FROM (SELECT set_config('lock_timeout', $2, true)) AS bound`,
    values: [JSON.stringify(records), `${Math.trunc(lockTimeoutMs)}ms`],
  };
}

/** The database took fewer audit entries than were sent: the request fails closed. */
export class AuditRowsDroppedError extends Error {
  constructor(sent: number, queued: number) {
    super(`The database queued ${queued} of ${sent} audit row(s): a trigger on audit_pending?`);
    this.name = 'AuditRowsDroppedError';
  }
}

export interface ChainHead {
  chainId: string;
  seq: number;
  hash: string;
}

export interface Checkpoint {
  chainId: string;
  chainSeq: number;
  hash: string;
  createdAt: Date;
  keyId: string;
  signature: string;
}

export interface ArchiveBoundary {
  chainId: string;
  throughSeq: number;
  hash: string;
  archivedAt: Date;
  keyId: string;
  signature: string;
}

/** Criteria of an audit search; all optional, combined with AND. */
export interface AuditQuery {
  patient?: string;
  agent?: string;
  /** The SMART client (backend client or app) a token was issued to, or a token request named. */
  client?: string;
  /**
   * The agent's name (the username, `os:<user>` for the CLI): FHIR string search, the start of
   * the name in any case, or with `exact` the name itself.
   */
  agentName?: { value: string; exact: boolean };
  entity?: string;
  actions?: string[];
  subtype?: string;
  /** AuditEvent outcome classes: success, minor failure (refused), serious failure (error). */
  outcome?: 'success' | 'minor' | 'serious';
  from?: Date;
  to?: Date;
  /** Keyset paging: rows with a chain_seq below this one (newest first). */
  beforeSeq?: number;
  limit: number;
}

/**
 * The rows of a username: `exact` as written, otherwise starting with `p` in any case. Each form
 * is one that an index on the name answers (see the audit-event-actor-name migration).
 */
export function agentNameCondition(exact: boolean, p: string): string {
  return exact ? `"actor_name" = ${p}` : `starts_with(lower("actor_name"), lower(${p}::text))`;
}

/**
 * The rows of a SMART client: the id after `client=` in the row's scope (http-audit's scopeText).
 * The partial index idx_audit_event_client holds exactly this expression, for the rows whose
 * scope names a client at all (see the audit-event-client migration).
 */
export function clientCondition(p: string): string {
  return `"actor_scope" LIKE '%client=%'
    AND substring("actor_scope" from '(?:^| )client=(\\S+)') = ${p}`;
}

/** The SQL of the audit trail. Appends run under the chain lock, in the caller's transaction. */
@Injectable()
export class AuditRepository {
  constructor(@InjectDataSource() private readonly dataSource: DataSource) {}

  /**
   * Appends entries after the chain head, in one statement (audit_append, in the migrations).
   * They are linked when their transaction commits (a deferred trigger takes a transaction-scoped
   * advisory lock and the head row), so concurrent writers (other requests, other instances, the
   * CLI) take turns and every row links to the one before, and a transaction that rolls back
   * leaves none. Until then the rows are not in audit_event, even to their own transaction.
   * With `lockTimeoutMs`, the transaction fails (SQLSTATE 55P03) rather than wait longer than
   * that for any lock from here to its end.
   */
  async append(
    manager: EntityManager,
    entries: readonly AuditEntry[],
    lockTimeoutMs?: number,
  ): Promise<void> {
    const { text, values } = appendStatement(entries, lockTimeoutMs);
    const [row] = await manager.query<{ queued: number | null }[]>(text, values);
    // audit_append answers how many entries it queued: fewer means something in the database
    // (a trigger added on audit_pending) dropped them, and the request must not succeed. Null
    // is a schema from before the audit-append-count migration (a backup of an older one).
    if (row?.queued !== null && row?.queued !== entries.length) {
      throw new AuditRowsDroppedError(entries.length, row?.queued ?? 0);
    }
  }

  async head(manager: EntityManager = this.dataSource.manager): Promise<ChainHead> {
    const [row] = await manager.query<{ chain_id: string; seq: string; hash: string }[]>(
      `SELECT "chain_id", "chain_seq" AS seq, "hash" FROM "audit_chain_head" WHERE "id" = 1`,
    );
    if (!row) {
      throw new Error('The audit chain head row is missing');
    }
    return { chainId: row.chain_id, seq: Number(row.seq), hash: row.hash };
  }

  /** Rows in chain order after `afterSeq`, for verification and export. */
  async readAfter(afterSeq: number, limit: number, toSeq?: number): Promise<ChainedAuditEntry[]> {
    const rows = await this.dataSource.query<Record<string, unknown>[]>(
      `SELECT ${SELECT_LIST} FROM "audit_event"
        WHERE "chain_seq" > $1 AND ($3::bigint IS NULL OR "chain_seq" <= $3)
        ORDER BY "chain_seq" LIMIT $2`,
      [afterSeq, limit, toSeq ?? null],
    );
    return rows.map(toEntry);
  }

  async bounds(): Promise<{ first: number; last: number; count: number }> {
    const [row] = await this.dataSource.query<{ first: string; last: string; count: string }[]>(
      `SELECT coalesce(min("chain_seq"), 0) AS first, coalesce(max("chain_seq"), 0) AS last,
              count(*) AS count FROM "audit_event"`,
    );
    return { first: Number(row?.first), last: Number(row?.last), count: Number(row?.count) };
  }

  /** The last row at or before a time: where an export or archive of a date range ends. */
  async lastSeqBefore(time: Date): Promise<number> {
    const [row] = await this.dataSource.query<{ seq: string }[]>(
      `SELECT coalesce(max("chain_seq"), 0) AS seq FROM "audit_event" WHERE "recorded_at" < $1`,
      [time],
    );
    return Number(row?.seq ?? 0);
  }

  /** The row before the first one recorded at or after `time`: every row up to it is older. */
  async lastSeqWhollyBefore(time: Date): Promise<number> {
    const [row] = await this.dataSource.query<{ seq: string }[]>(
      `SELECT coalesce(
         (SELECT min("chain_seq") FROM "audit_event" WHERE "recorded_at" >= $1),
         (SELECT coalesce(max("chain_seq"), 0) + 1 FROM "audit_event")
       ) - 1 AS seq`,
      [time],
    );
    return Number(row?.seq ?? 0);
  }

  async search(query: AuditQuery): Promise<ChainedAuditEntry[]> {
    const conditions: string[] = [];
    const params: unknown[] = [];
    const add = (sql: (p: string) => string, value: unknown): void => {
      params.push(value);
      conditions.push(sql(`$${params.length}`));
    };
    if (query.patient !== undefined)
      add((p) => `"patient_ids" @> ARRAY[${p}]::text[]`, query.patient);
    if (query.entity !== undefined) add((p) => `"entities" @> ARRAY[${p}]::text[]`, query.entity);
    if (query.agent !== undefined) add((p) => `"actor_user_id" = ${p}`, query.agent);
    if (query.client !== undefined) add(clientCondition, query.client);
    if (query.agentName !== undefined) {
      const { exact, value } = query.agentName;
      add((p) => agentNameCondition(exact, p), value);
    }
    if (query.actions !== undefined) add((p) => `"action" = ANY(${p}::text[])`, query.actions);
    if (query.subtype !== undefined) add((p) => `"subtype" = ${p}`, query.subtype);
    if (query.outcome !== undefined) {
      conditions.push(
        {
          success: `"outcome" = 'success'`,
          minor: `"outcome" = 'failure' AND "status_code" < 500`,
          serious: `"outcome" = 'failure' AND ("status_code" IS NULL OR "status_code" >= 500)`,
        }[query.outcome],
      );
    }
    if (query.from !== undefined) add((p) => `"recorded_at" >= ${p}`, query.from);
    if (query.to !== undefined) add((p) => `"recorded_at" < ${p}`, query.to);
    if (query.beforeSeq !== undefined) add((p) => `"chain_seq" < ${p}`, query.beforeSeq);
    params.push(query.limit);
    const rows = await this.dataSource.query<Record<string, unknown>[]>(
      `SELECT ${SELECT_LIST} FROM "audit_event"
        ${conditions.length > 0 ? `WHERE ${conditions.join(' AND ')}` : ''}
        ORDER BY "chain_seq" DESC LIMIT $${params.length}`,
      params,
    );
    return rows.map(toEntry);
  }

  /** Whether a Patient of this id was ever stored, deleted since or not. */
  isPatientId(id: string): Promise<boolean> {
    return this.isStored('Patient', id);
  }

  /** Whether a resource of this type and id was ever stored, deleted since or not. */
  async isStored(type: string, id: string): Promise<boolean> {
    const rows = await this.dataSource.query<unknown[]>(
      `SELECT 1 FROM "resource" WHERE "resource_type" = $1 AND "id" = $2`,
      [type, id],
    );
    return rows.length > 0;
  }

  async findById(id: string): Promise<ChainedAuditEntry | undefined> {
    const rows = await this.dataSource.query<Record<string, unknown>[]>(
      `SELECT ${SELECT_LIST} FROM "audit_event" WHERE "id" = $1`,
      [id],
    );
    return rows[0] ? toEntry(rows[0]) : undefined;
  }

  async insertCheckpoint(checkpoint: Checkpoint): Promise<void> {
    await this.dataSource.query(
      `INSERT INTO "audit_checkpoint" ("chain_id", "chain_seq", "hash", "created_at", "key_id", "signature")
       VALUES ($6, $1, $2, $3, $4, $5) ON CONFLICT DO NOTHING`,
      [
        checkpoint.chainSeq,
        checkpoint.hash,
        checkpoint.createdAt,
        checkpoint.keyId,
        checkpoint.signature,
        checkpoint.chainId,
      ],
    );
  }

  async checkpoints(): Promise<Checkpoint[]> {
    const rows = await this.dataSource.query<
      {
        chain_id: string;
        chain_seq: string;
        hash: string;
        created_at: Date;
        key_id: string;
        signature: string;
      }[]
    >(
      `SELECT "chain_id", "chain_seq", "hash", "created_at", "key_id", "signature"
         FROM "audit_checkpoint" ORDER BY "chain_seq", "created_at"`,
    );
    return rows.map((row) => ({
      chainId: row.chain_id,
      chainSeq: Number(row.chain_seq),
      hash: row.hash,
      createdAt: row.created_at,
      keyId: row.key_id,
      signature: row.signature,
    }));
  }

  async archives(): Promise<ArchiveBoundary[]> {
    const rows = await this.dataSource.query<
      {
        chain_id: string;
        through_seq: string;
        hash: string;
        archived_at: Date;
        key_id: string;
        signature: string;
      }[]
    >(
      `SELECT "chain_id", "through_seq", "hash", "archived_at", "key_id", "signature"
         FROM "audit_archive" ORDER BY "through_seq"`,
    );
    return rows.map((row) => ({
      chainId: row.chain_id,
      throughSeq: Number(row.through_seq),
      hash: row.hash,
      archivedAt: row.archived_at,
      keyId: row.key_id,
      signature: row.signature,
    }));
  }

  /** Records the signed boundary, then removes the rows up to it, in one transaction. */
  async archiveThrough(boundary: ArchiveBoundary): Promise<number> {
    return this.dataSource.transaction(async (manager) => {
      await manager.query(
        `INSERT INTO "audit_archive" ("chain_id", "through_seq", "hash", "archived_at", "key_id", "signature")
         VALUES ($6, $1, $2, $3, $4, $5)`,
        [
          boundary.throughSeq,
          boundary.hash,
          boundary.archivedAt,
          boundary.keyId,
          boundary.signature,
          boundary.chainId,
        ],
      );
      const [row] = await manager.query<{ count: string }[]>(
        `WITH deleted AS (DELETE FROM "audit_event" WHERE "chain_seq" <= $1 RETURNING 1)
         SELECT count(*) AS count FROM deleted`,
        [boundary.throughSeq],
      );
      return Number(row?.count ?? 0);
    });
  }
}

function toEntry(row: Record<string, unknown>): ChainedAuditEntry {
  const entry = Object.fromEntries(
    COLUMNS.map(([field, column]) => [field, row[column]]),
  ) as Record<string, unknown>;
  entry['chainSeq'] = Number(entry['chainSeq']);
  return entry as unknown as ChainedAuditEntry;
}
