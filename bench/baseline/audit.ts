import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { contentHash, type AuditEntry } from '../../src/audit/audit-record.js';
import { AUDIT_APPEND } from './statements.js';

/** The columns audit_append() reads from each entry, in AuditRepository's order. */
const COLUMNS: readonly [keyof AuditEntry, string][] = [
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
];

/** AuditRepository.append's statement for some entries (the chain lock is taken inside). */
export function appendStatement(entries: readonly AuditEntry[]): {
  text: string;
  values: string[];
} {
  const records = entries.map((entry) => ({
    ...Object.fromEntries(COLUMNS.map(([field, column]) => [column, entry[field]])),
    content_hash: contentHash(entry),
  }));
  return { text: AUDIT_APPEND, values: [JSON.stringify(records)] };
}

/** What an HTTP request's audit row says, as CareVault's httpAuditEntry() would fill it. */
export interface RequestAudit {
  requestId: string;
  user: { id: string; username: string; roles: string[] } | undefined;
  ip: string;
  userAgent: string | undefined;
  method: string;
  route: string | null;
  action: string;
  subtype: string | null;
  resourceType: string | null;
  resourceId: string | null;
  resourceVersion: string | null;
  patientIds: string[];
  entities: string[];
  queryParams: string[];
  statusCode: number;
  detail?: string | null;
}

export function auditEntry(facts: RequestAudit): AuditEntry {
  return {
    id: randomUUID(),
    recordedAt: new Date(),
    source: 'http',
    requestId: facts.requestId,
    actorUserId: facts.user?.id ?? null,
    actorName: facts.user?.username ?? null,
    actorRoles: [...(facts.user?.roles ?? [])],
    actorScope: null,
    breakGlass: false,
    sourceIp: facts.ip,
    userAgent: facts.userAgent?.slice(0, 200) ?? null,
    action: facts.action,
    subtype: facts.subtype,
    method: facts.method,
    route: facts.route,
    resourceType: facts.resourceType,
    resourceId: facts.resourceId,
    resourceVersion: facts.resourceVersion,
    patientIds: [...new Set(facts.patientIds)].sort(),
    entities: facts.entities,
    queryParams: facts.queryParams,
    outcome: facts.statusCode < 400 ? 'success' : 'failure',
    statusCode: facts.statusCode,
    detail: facts.detail ?? null,
  };
}

interface Waiting {
  entry: AuditEntry;
  resolve: () => void;
  reject: (error: unknown) => void;
}

/**
 * AuditTrail.record: rows of requests that are not writes commit through a group commit, one
 * audit_append() on its own per group, and each request waits for its row's commit.
 */
export class GroupCommit {
  private waiting: Waiting[] = [];
  private draining: Promise<void> | undefined;

  constructor(private readonly pool: pg.Pool) {}

  record(entry: AuditEntry): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.waiting.push({ entry, resolve, reject });
      this.draining ??= this.drain();
    });
  }

  async flush(): Promise<void> {
    while (this.draining) await this.draining;
  }

  private async drain(): Promise<void> {
    try {
      while (this.waiting.length > 0) {
        const group = this.waiting.splice(0, 500);
        try {
          await this.pool.query(appendStatement(group.map((waiting) => waiting.entry)));
          for (const waiting of group) waiting.resolve();
        } catch (error) {
          for (const waiting of group) waiting.reject(error);
        }
      }
    } finally {
      this.draining = undefined;
    }
  }
}
