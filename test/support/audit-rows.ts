import type { ChainedAuditEntry } from '../../src/audit/audit-record.js';

/**
 * An audit row written straight into the table, as an attacker with SQL access would (the
 * tamper tests): every column the chain hashes, in the order of auditRowValues.
 */
export const INSERT_AUDIT_ROW = `INSERT INTO audit_event (chain_seq, id, recorded_at, source, request_id, action, outcome, status_code, patient_ids, entities, query_params, actor_roles, break_glass, method, route, resource_type, resource_id, user_agent, source_ip, subtype, prev_hash, hash, actor_user_id, actor_name, actor_scope, resource_version, detail)
  VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20,$21,$22,$23,$24,$25,$26,$27)`;

export function auditRowValues(e: ChainedAuditEntry): unknown[] {
  return [
    e.chainSeq,
    e.id,
    e.recordedAt,
    e.source,
    e.requestId,
    e.action,
    e.outcome,
    e.statusCode,
    e.patientIds,
    e.entities,
    e.queryParams,
    e.actorRoles,
    e.breakGlass,
    e.method,
    e.route,
    e.resourceType,
    e.resourceId,
    e.userAgent,
    e.sourceIp,
    e.subtype,
    e.prevHash,
    e.hash,
    e.actorUserId,
    e.actorName,
    e.actorScope,
    e.resourceVersion,
    e.detail,
  ];
}
