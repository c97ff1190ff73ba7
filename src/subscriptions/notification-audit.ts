import { randomUUID } from 'node:crypto';
import type { AuditEntry } from '../audit/audit-record.js';
import type { NotificationOutcome, PendingNotification } from './subscription.repository.js';
import { SUBSCRIPTIONS_USER } from './subscriptions-user.js';

/**
 * The audit row of a notification delivered, given up, or of the Subscription set to `error`:
 * which Subscription, to which origin (a path or query may hold a token), how many changes it
 * answered for. A notification carries no record, so the row names the Subscription, not the
 * resource that matched. Retries are not audited, only the end.
 */
export function notificationAuditEntry(
  head: PendingNotification,
  outcome: NotificationOutcome,
  endpoint: string | undefined,
  settled: number,
): AuditEntry {
  return {
    id: randomUUID(),
    recordedAt: new Date(),
    source: 'system',
    requestId: null,
    actorUserId: SUBSCRIPTIONS_USER.id,
    actorName: SUBSCRIPTIONS_USER.username,
    actorRoles: [...SUBSCRIPTIONS_USER.roles],
    actorScope: null,
    breakGlass: false,
    sourceIp: null,
    userAgent: null,
    action: 'execute',
    subtype: 'subscription-notification',
    method: 'POST',
    route: endpoint ? new URL(endpoint).origin : null,
    resourceType: 'Subscription',
    resourceId: head.subscriptionId,
    resourceVersion: null,
    patientIds: [],
    entities: [`Subscription/${head.subscriptionId}`],
    queryParams: [],
    outcome: outcome.status === 'sent' ? 'success' : 'failure',
    statusCode: null,
    detail: [
      outcome.status,
      `notifications=${settled}`,
      `attempts=${outcome.attempts}`,
      outcome.lastError,
    ]
      .filter(Boolean)
      .join(' '),
  };
}
