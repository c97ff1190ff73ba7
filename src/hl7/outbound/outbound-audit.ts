import { randomUUID } from 'node:crypto';
import type { AuditEntry } from '../../audit/audit-record.js';
import type { Hl7OutboxEntity } from './hl7-outbox.entity.js';
import type { OutboxAttempt } from './hl7-outbox.repository.js';

/**
 * The audit entry of a disclosure to another system (or of giving up on one): which patient's
 * data went where, with the destination's answer. Retries are not audited, only the end.
 */
export function outboundAuditEntry(row: Hl7OutboxEntity, attempt: OutboxAttempt): AuditEntry {
  const entity = `${row.resourceType}/${row.resourceId}`;
  // An A40 carries the PID of the Patient the resource was merged into: its data went out too.
  const survivor = row.survivorId === null ? [] : [row.survivorId];
  return {
    id: randomUUID(),
    recordedAt: new Date(),
    source: 'hl7',
    requestId: null,
    actorUserId: null,
    actorName: 'hl7:outbound',
    actorRoles: ['integration'],
    actorScope: null,
    breakGlass: false,
    sourceIp: null,
    userAgent: null,
    action: 'execute',
    subtype: row.messageType,
    method: 'mllp-out',
    route: row.destination,
    resourceType: row.resourceType,
    resourceId: row.resourceId,
    resourceVersion: String(row.versionId),
    patientIds: row.resourceType === 'Patient' ? [row.resourceId, ...survivor] : [],
    entities: [entity, ...survivor.map((id) => `Patient/${id}`)],
    queryParams: [],
    outcome: attempt.status === 'sent' ? 'success' : 'failure',
    statusCode: null,
    detail: [`outbox ${row.seq}`, attempt.ackCode, attempt.lastError].filter(Boolean).join(' '),
  };
}
