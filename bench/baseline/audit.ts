import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import type { AuditEntry } from '../../src/audit/audit-record.js';
import { appendStatement } from '../../src/audit/audit.repository.js';

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

/**
 * AUDIT_WRITE_TIMEOUT_MS's default: CareVault's audit_append() sets it as the transaction's
 * lock_timeout in the same statement (AuditRepository), for a group's rows and a write's alike.
 */
export const AUDIT_WRITE_TIMEOUT_MS = 5000;

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
          await this.pool.query(
            appendStatement(
              group.map((waiting) => waiting.entry),
              AUDIT_WRITE_TIMEOUT_MS,
            ),
          );
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
