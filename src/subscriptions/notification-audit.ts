import { randomUUID } from 'node:crypto';
import type { AuditEntry } from '../audit/audit-record.js';
import type { NotificationOutcome, PendingNotification } from './subscription.repository.js';
import { SUBSCRIPTIONS_USER } from './subscriptions-user.js';

/**
 * The audit row of a notification delivered or given up:
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
    ...systemEntry(head.subscriptionId),
    action: 'execute',
    method: 'POST',
    route: endpoint ? new URL(endpoint).origin : null,
    resourceVersion: null,
    outcome: outcome.status === 'sent' ? 'success' : 'failure',
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

/**
 * The audit row of a status the notifier gave a Subscription (`active`, `off`, `error`),
 * committed with the version that says so: which Subscription, the version written, and the
 * status with a fixed reason (`active accepted`, `off ended`, `error delivery-failed`,
 * `error owner=app-disabled client=<id>`), never its endpoint, criteria or error text.
 */
export function stateAuditEntry(
  subscriptionId: string,
  versionId: string | undefined,
  detail: string,
): AuditEntry {
  return {
    ...systemEntry(subscriptionId),
    action: 'update',
    method: null,
    route: null,
    resourceVersion: versionId ?? null,
    outcome: 'success',
    detail,
  };
}

type SystemEntry = Omit<
  AuditEntry,
  'action' | 'method' | 'route' | 'resourceVersion' | 'outcome' | 'detail'
>;

/** What every row of the notifier says: the system, about one Subscription. */
function systemEntry(subscriptionId: string): SystemEntry {
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
    subtype: 'subscription-notification',
    resourceType: 'Subscription',
    resourceId: subscriptionId,
    patientIds: [],
    entities: [`Subscription/${subscriptionId}`],
    queryParams: [],
    statusCode: null,
  };
}
