import { randomUUID } from 'node:crypto';
import type { AuditEntry } from '../../audit/audit-record.js';
import type { Hl7Outcome } from '../store/hl7-message.repository.js';
import type { Hl7MessageEntity } from '../store/hl7-message.entity.js';

/**
 * The audit entry of one received HL7 message. The sender is named by its MSH-3 application,
 * a system identifier, and over mutual TLS by its certificate; the stored message's id is the
 * request id, so the row leads to it.
 */
export function hl7AuditEntry(
  message: Hl7MessageEntity,
  outcome: Hl7Outcome,
  touched: { entities: string[]; patientIds: string[] } = { entities: [], patientIds: [] },
): AuditEntry {
  const [subject, fingerprint] = message.peerCertificate?.split('; ') ?? [];
  return {
    id: randomUUID(),
    recordedAt: new Date(),
    source: 'hl7',
    requestId: message.id,
    // Over mutual TLS the certificate is who sent it (its fingerprint, to find all it sent).
    actorUserId: fingerprint ? `x509:${fingerprint}` : null,
    actorName: `hl7:${message.sendingApplication ?? 'unknown'}${subject ? ` (${subject})` : ''}`,
    actorRoles: ['integration'],
    actorScope: null,
    breakGlass: false,
    sourceIp: message.peer,
    userAgent: null,
    action: 'execute',
    subtype: message.messageType ?? 'hl7-v2',
    method: message.channel,
    route: null,
    resourceType: null,
    resourceId: null,
    resourceVersion: null,
    patientIds: touched.patientIds,
    entities: touched.entities,
    queryParams: [],
    outcome: outcome.ackCode === 'AA' ? 'success' : 'failure',
    statusCode: null,
    detail: [outcome.ackCode, outcome.errorCode, outcome.status === 'ignored' ? 'ignored' : null]
      .filter(Boolean)
      .join(' '),
  };
}
