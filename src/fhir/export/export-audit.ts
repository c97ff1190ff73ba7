import { randomUUID } from 'node:crypto';
import type { AuditEntry } from '../../audit/audit-record.js';
import type { AuthenticatedUser } from '../../auth/authenticated-user.js';

/**
 * The audit row of a finished export: who asked (the kick-off's request id ties it to that
 * request's own row) and every patient whose data the files hold. Each download of a file gets
 * its own row as well, from the request.
 */
export function exportAuditEntry(
  job: {
    id: string;
    user: AuthenticatedUser;
    request: { level: string; requestId: string; groupId?: string };
    files: { count: number }[];
  },
  patientIds: string[],
  outcome: 'success' | 'failure',
): AuditEntry {
  const resources = job.files.reduce((sum, file) => sum + file.count, 0);
  return {
    id: randomUUID(),
    recordedAt: new Date(),
    source: 'system',
    requestId: job.request.requestId,
    actorUserId: job.user.id,
    actorName: job.user.username,
    actorRoles: [...job.user.roles],
    actorScope: null,
    breakGlass: false,
    sourceIp: null,
    userAgent: null,
    action: 'export',
    subtype: `$export-${job.request.level}`,
    method: null,
    route: null,
    resourceType: job.request.groupId ? 'Group' : null,
    resourceId: job.request.groupId ?? null,
    resourceVersion: null,
    patientIds,
    entities: [],
    queryParams: [],
    outcome,
    statusCode: null,
    detail: `job=${job.id} files=${job.files.length} resources=${resources}`,
  };
}
