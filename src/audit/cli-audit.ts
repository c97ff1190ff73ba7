import { randomUUID } from 'node:crypto';
import { userInfo } from 'node:os';
import type { AuditEntry } from './audit-record.js';

/** Who ran a CLI command: the operating-system account (the CLI has no login of its own). */
function osUser(): string {
  try {
    return userInfo().username;
  } catch {
    return 'unknown';
  }
}

/** The audit entry of an admin CLI command (user administration, key rotation, archiving). */
export function cliAuditEntry(command: string, details: Partial<AuditEntry> = {}): AuditEntry {
  return {
    id: randomUUID(),
    recordedAt: new Date(),
    source: 'cli',
    requestId: null,
    actorUserId: null,
    actorName: `os:${osUser()}`,
    actorRoles: [],
    actorScope: null,
    breakGlass: false,
    sourceIp: null,
    userAgent: null,
    action: 'execute',
    subtype: command,
    method: null,
    route: null,
    resourceType: null,
    resourceId: null,
    resourceVersion: null,
    patientIds: [],
    entities: [],
    queryParams: [],
    outcome: 'success',
    statusCode: null,
    detail: null,
    ...details,
  };
}
