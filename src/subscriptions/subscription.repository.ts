import { Injectable } from '@nestjs/common';
import { UnitOfWork } from '../database/unit-of-work.js';

/** Whose access a Subscription's criteria are evaluated with: the user who last wrote it. */
export interface SubscriptionOwner {
  id: string;
  username: string;
  roles: string[];
  /** The token's SMART scopes as SMART spells them, when it had some. */
  scope?: string;
  patient?: string;
  clientId?: string;
}

export interface StoredSubscription {
  id: string;
  criteriaType: string;
  criteria: string;
  owner: SubscriptionOwner;
  end?: Date;
}

/**
 * Why a Subscription's owner may no longer have notifications sent: the account that wrote it,
 * or the SMART app or backend client whose token it was written with, is disabled.
 */
export type OwnerRevocation = 'account' | 'app' | 'backend-client';

export interface RevokedSubscription {
  id: string;
  revocation: OwnerRevocation;
  /** The app or backend client, when it is the one disabled. */
  clientId?: string;
}

/**
 * The owner's account, app and backend client, of `fhir_subscription s`. An owner from an
 * identity provider has no account row, and its token's client no registration: never revoked.
 */
const OWNER_JOINS = `LEFT JOIN app_user u ON u.id::text = s.owner->>'id'
  LEFT JOIN smart_app a ON a.id::text = s.owner->>'clientId'
  LEFT JOIN backend_client c ON c.id::text = s.owner->>'clientId'`;
/** Which of them is disabled (the account first), else NULL. */
const REVOCATION = `CASE WHEN u.active IS FALSE THEN 'account' WHEN a.active IS FALSE THEN 'app'
  WHEN c.active IS FALSE THEN 'backend-client' END`;

/**
 * The class of the transaction-scoped advisory locks ('cvSN', with the Subscription id's hash)
 * that a worker holds on the Subscription whose notification it claimed. Two int4 keys: a space
 * apart from the bigint keys of conditional criteria (ResourceRepository.lockCriteria).
 */
const CLAIM_LOCK = 0x6376534e;

/**
 * Notifications delivered or cancelled that were queued before `before` (a parameter): what
 * the purge deletes, read through idx_subscription_notification_settled.
 */
export function settledBefore(before: string): string {
  return `status IN ('sent', 'cancelled') AND created_at < ${before}`;
}

/** A claimed head whose Subscription another worker serves: given back, its lock released. */
class ServedElsewhere extends Error {
  constructor(readonly subscriptionId: string) {
    super('The Subscription is served by another worker');
  }
}

export interface PendingNotification {
  seq: string;
  subscriptionId: string;
  resourceType: string;
  resourceId: string;
  versionId: number;
  attempts: number;
}

/** A notification to queue: the Subscription, and the version of the resource that matched. */
export interface QueuedNotification {
  subscriptionId: string;
  type: string;
  id: string;
  versionId: number;
}

/** A Subscription as an administrator's list shows it: no endpoint, criteria or header. */
export interface SubscriptionSummary {
  id: string;
  status: string;
  /** Why the server gave it its status, in fixed words (`delivery-failed`). */
  reason?: string;
  /** The username of its owner, the account that last wrote it. */
  owner: string;
  updatedAt: string;
  notifications: { pending: number; dead: number; lastError?: string };
}

export type NotificationOutcome =
  | { status: 'sent' | 'cancelled' | 'dead'; attempts: number; lastError: string | null }
  | { status: 'pending'; attempts: number; lastError: string; nextAttemptAt: Date };

/** All SQL of Subscriptions and their notification outbox, in the caller's unit of work. */
@Injectable()
export class SubscriptionRepository {
  constructor(private readonly unitOfWork: UnitOfWork) {}

  /**
   * How many active Subscriptions (`requested` or `active`, not ended, not deleted) the account
   * owns besides `except`. Not counted under a lock: writes of one account at once may each
   * pass a limit by one, where a lock on the account, taken after the written row's, would
   * deadlock a Bundle of that account's Subscriptions with a write of one of them.
   */
  async activeOwnedBy(ownerId: string, except: string): Promise<number> {
    const [row] = await this.unitOfWork.manager.query<{ count: number }[]>(
      `SELECT count(*)::int AS count
         FROM fhir_subscription s
         JOIN resource r ON r.resource_type = 'Subscription' AND r.id = s.id AND NOT r.deleted
        WHERE s.owner->>'id' = $1 AND s.id <> $2 AND s.active
          AND (s.ends_at IS NULL OR s.ends_at > now())`,
      [ownerId, except],
    );
    return row?.count ?? 0;
  }

  /**
   * Stores what its owner wrote; what is queued for it is tried afresh, and, written active,
   * what was given up too.
   */
  async save(
    id: string,
    plan: { criteriaType: string; criteria: string; status: string; active: boolean; end?: Date },
    owner: SubscriptionOwner,
  ): Promise<void> {
    await this.unitOfWork.manager.query(
      `INSERT INTO fhir_subscription
         (id, criteria_type, criteria, status, owner, active, ends_at, updated_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, now())
       ON CONFLICT (id) DO UPDATE SET criteria_type = $2, criteria = $3, status = $4, owner = $5,
         active = $6, ends_at = $7, failure = NULL, status_reason = NULL, updated_at = now()`,
      [
        id,
        plan.criteriaType,
        plan.criteria,
        plan.status,
        JSON.stringify(owner),
        plan.active,
        plan.end ?? null,
      ],
    );
    // Changed by its owner (a new endpoint, say): what waits out a retry's backoff, up to five
    // minutes, is tried afresh now. One being sent is skipped: its outcome settles it.
    await this.unitOfWork.manager.query(
      `UPDATE subscription_notification SET attempts = 0, next_attempt_at = now()
        WHERE seq IN (SELECT seq FROM subscription_notification
                       WHERE subscription_id = $1 AND status = 'pending' AND attempts > 0
                       FOR UPDATE SKIP LOCKED)`,
      [id],
    );
    if (plan.active) {
      // Started again after it was given up on (its receiver back, or a new endpoint): what
      // was given up is sent, one POST for all, so that the receiver reads what it missed.
      // Until 2026-12-07 it heard nothing until the next matching change.
      await this.unitOfWork.manager.query(
        `UPDATE subscription_notification
            SET status = 'pending', attempts = 0, last_error = NULL, next_attempt_at = now()
          WHERE subscription_id = $1 AND status = 'dead'`,
        [id],
      );
    }
  }

  /**
   * The status the notifier gave it (`active`, `error`, `off`), keeping its owner and criteria;
   * a failure it was set to `error` for is dealt with. Its `end`, when given, is recorded (a row
   * written before ends were kept learns it so).
   */
  async setState(
    id: string,
    status: string | undefined,
    active: boolean,
    end?: Date,
  ): Promise<void> {
    await this.unitOfWork.manager.query(
      `UPDATE fhir_subscription
          SET status = coalesce($2, status), active = $3, ends_at = coalesce($4, ends_at),
              failure = NULL, updated_at = now()
        WHERE id = $1`,
      [id, status ?? null, active, end ?? null],
    );
  }

  /**
   * Why the notifier gave the Subscription its status: the fixed words of its audit row
   * (`delivery-failed`, `owner=app-disabled client=…`), or null for none (`active accepted`).
   */
  async setStatusReason(id: string, reason: string | null): Promise<void> {
    await this.unitOfWork.manager.query(
      `UPDATE fhir_subscription SET status_reason = $2 WHERE id = $1`,
      [id, reason],
    );
  }

  /**
   * Live Subscriptions of `status`, by id after `after`, at most `limit`: why the notifier
   * gave them it, their owner's username, and their notifications waiting and given up, with
   * the last error of the newest given up (an HTTP status or a network code, never a URL).
   */
  async listByStatus(
    status: string,
    after: string | undefined,
    limit: number,
  ): Promise<SubscriptionSummary[]> {
    const rows = await this.unitOfWork.manager.query<
      {
        id: string;
        status: string;
        status_reason: string | null;
        failure: boolean;
        revocation: OwnerRevocation | null;
        owner: string | null;
        updated_at: Date;
        pending: number;
        dead: number;
        last_error: string | null;
      }[]
    >(
      `SELECT s.id, s.status, s.status_reason, s.failure IS NOT NULL AS failure,
              ${REVOCATION} AS revocation, s.owner->>'username' AS owner, s.updated_at,
              (SELECT count(*)::int FROM subscription_notification n
                WHERE n.subscription_id = s.id AND n.status = 'pending') AS pending,
              (SELECT count(*)::int FROM subscription_notification n
                WHERE n.subscription_id = s.id AND n.status = 'dead') AS dead,
              (SELECT n.last_error FROM subscription_notification n
                WHERE n.subscription_id = s.id AND n.status = 'dead'
                ORDER BY n.seq DESC LIMIT 1) AS last_error
         FROM fhir_subscription s
         JOIN resource r ON r.resource_type = 'Subscription' AND r.id = s.id AND NOT r.deleted
         ${OWNER_JOINS}
        WHERE s.status = $1 AND ($2::text IS NULL OR s.id > $2)
        ORDER BY s.id
        LIMIT $3`,
      [status, after ?? null, limit],
    );
    return rows.map((row) => ({
      id: row.id,
      status: row.status,
      ...(row.status_reason
        ? { reason: row.status_reason }
        : row.failure
          ? { reason: 'criteria-failed' }
          : row.revocation
            ? { reason: `owner=${row.revocation}-disabled` }
            : {}),
      owner: row.owner ?? '',
      updatedAt: row.updated_at.toISOString(),
      notifications: {
        pending: row.pending,
        dead: row.dead,
        ...(row.last_error ? { lastError: row.last_error } : {}),
      },
    }));
  }

  /**
   * Stops delivering to a Subscription given up on, if its current version is still
   * `versionId`, the one whose deliveries failed; true when stopped. The row is locked first, so
   * that the version is read after an owner's write that holds it has committed; one that
   * reaches it after stores its own state over this.
   */
  async stopAtVersion(id: string, versionId: number): Promise<boolean> {
    const { manager } = this.unitOfWork;
    await manager.query(`SELECT 1 FROM fhir_subscription WHERE id = $1 FOR UPDATE`, [id]);
    const rows = await manager.query<{ id: string }[]>(
      // Under WITH the statement is a SELECT, so the driver returns rows rather than a count.
      `WITH stopped AS (
         UPDATE fhir_subscription s SET active = false, failure = NULL, updated_at = now()
          WHERE s.id = $1
            AND EXISTS (SELECT 1 FROM resource r WHERE r.resource_type = 'Subscription'
                          AND r.id = s.id AND r.version_id = $2)
         RETURNING s.id)
       SELECT id FROM stopped`,
      [id, versionId],
    );
    return rows.length > 0;
  }

  /** Live Subscriptions still `requested` that were accepted: the notifier makes them `active`. */
  async requested(limit: number): Promise<string[]> {
    const rows = await this.takeForStatus<{ id: string }>({
      where: `s.active AND s.status = 'requested' AND (s.ends_at IS NULL OR s.ends_at > now())`,
      order: 's.updated_at',
      limit,
    });
    return rows.map((row) => row.id);
  }

  /**
   * Live Subscriptions (`requested`, `active`) past their `end`: the notifier turns them `off`.
   * By status, not by the active flag: one written with its `end` already past is stored
   * inactive, and stayed `requested` for good until 2026-12-06.
   */
  async ended(limit: number): Promise<string[]> {
    const rows = await this.takeForStatus<{ id: string }>({
      where: `s.status IN ('requested', 'active') AND s.ends_at <= now()`,
      order: 's.ends_at',
      limit,
    });
    return rows.map((row) => row.id);
  }

  /**
   * Stops a Subscription whose criteria failed, until the notifier has set it to `error`: if
   * they are still its criteria. An instance that has yet to re-read it may match criteria its
   * owner has since replaced; until 2026-12-07 their failure stopped the owner's new version,
   * which the notifier then set to `error` for criteria it no longer had.
   */
  async fail(id: string, criteria: { type: string; query: string }, reason: string): Promise<void> {
    await this.unitOfWork.manager.query(
      `UPDATE fhir_subscription SET active = false, failure = $4, updated_at = now()
        WHERE id = $1 AND criteria_type = $2 AND criteria = $3`,
      [id, criteria.type, criteria.query, reason],
    );
  }

  /** Live Subscriptions stopped by a failure that the notifier has yet to set to `error`. */
  async failed(limit: number): Promise<{ id: string; failure: string }[]> {
    return this.takeForStatus<{ id: string; failure: string }>({
      columns: ', s.failure',
      where: 's.failure IS NOT NULL',
      order: 's.updated_at',
      limit,
    });
  }

  /**
   * Live Subscriptions whose owner was disabled (account, app or backend client): the notifier
   * sets them to `error`.
   */
  async revoked(limit: number): Promise<RevokedSubscription[]> {
    const rows = await this.takeForStatus<{
      id: string;
      revocation: OwnerRevocation;
      client_id: string | null;
    }>({
      columns: `, ${REVOCATION} AS revocation, s.owner->>'clientId' AS client_id`,
      joins: OWNER_JOINS,
      where: `s.active AND ${REVOCATION} IS NOT NULL`,
      order: 's.updated_at',
      limit,
    });
    return rows.map((row) => ({
      id: row.id,
      revocation: row.revocation,
      ...(row.revocation !== 'account' && row.client_id ? { clientId: row.client_id } : {}),
    }));
  }

  /**
   * At most `limit` live Subscriptions `where` selects, for the notifier to set their status:
   * those it has never taken up first, then the one it took up longest ago (then by `order`),
   * each marked as taken up now, in the same statement. One it cannot change (a restricted
   * Subscription no account may write, one that no longer validates) stays selected; ordered
   * as they were written, the same `limit` of those came first every round and the others
   * never did. Rows another instance is taking up are skipped.
   */
  private takeForStatus<T extends { id: string }>(query: {
    columns?: string;
    joins?: string;
    where: string;
    order: string;
    limit: number;
  }): Promise<T[]> {
    return this.unitOfWork.manager.query<T[]>(
      // Under WITH the statement is a SELECT, so the driver returns rows rather than a count.
      `WITH taken AS (
         SELECT s.id${query.columns ?? ''}
           FROM fhir_subscription s
           JOIN resource r ON r.resource_type = 'Subscription' AND r.id = s.id AND NOT r.deleted
           ${query.joins ?? ''}
          WHERE ${query.where}
          ORDER BY s.status_attempted_at NULLS FIRST, ${query.order}
          LIMIT $1
          FOR UPDATE OF s SKIP LOCKED),
       marked AS (
         UPDATE fhir_subscription s SET status_attempted_at = now()
           FROM taken WHERE s.id = taken.id
         RETURNING taken.*)
       SELECT * FROM marked`,
      [query.limit],
    );
  }

  /** Whether the Subscription's owner is disabled now, and which part of it. */
  async revocationOf(id: string): Promise<OwnerRevocation | undefined> {
    const [row] = await this.unitOfWork.manager.query<{ revocation: OwnerRevocation | null }[]>(
      `SELECT ${REVOCATION} AS revocation FROM fhir_subscription s ${OWNER_JOINS} WHERE s.id = $1`,
      [id],
    );
    return row?.revocation ?? undefined;
  }

  /**
   * Active Subscriptions whose resource is live, that have not ended, and whose owner is not
   * disabled (account, app or backend client); a local owner's roles are today's, not those of
   * when they wrote it.
   */
  async active(): Promise<StoredSubscription[]> {
    const rows = await this.unitOfWork.manager.query<
      {
        id: string;
        criteria_type: string;
        criteria: string;
        owner: SubscriptionOwner;
        roles: string[] | null;
        ends_at: Date | null;
      }[]
    >(
      `SELECT s.id, s.criteria_type, s.criteria, s.owner, u.roles, s.ends_at
         FROM fhir_subscription s
         JOIN resource r ON r.resource_type = 'Subscription' AND r.id = s.id AND NOT r.deleted
         ${OWNER_JOINS}
        WHERE s.active AND (s.ends_at IS NULL OR s.ends_at > now()) AND ${REVOCATION} IS NULL`,
    );
    return rows.map((row) => ({
      id: row.id,
      criteriaType: row.criteria_type,
      criteria: row.criteria,
      owner: { ...row.owner, roles: row.roles ?? row.owner.roles },
      ...(row.ends_at ? { end: row.ends_at } : {}),
    }));
  }

  /**
   * Queues the notifications in one statement, in the order given (their seq follows it): a
   * transaction that deletes or writes many matching resources queues them all at once. Until
   * 2026-12-07 each was an INSERT of its own: 100 deletions matched by 50 Subscriptions spent
   * 1.6 s of 2.9 s writing their 5,000 rows one by one.
   */
  /** The current version of each of `ids` of `type` that is live, by id. */
  async currentVersions(type: string, ids: readonly string[]): Promise<Map<string, number>> {
    const rows = await this.unitOfWork.manager.query<{ id: string; version_id: number }[]>(
      `SELECT id, version_id FROM resource
        WHERE resource_type = $1 AND id = ANY($2::text[]) AND NOT deleted`,
      [type, ids],
    );
    return new Map(rows.map((row) => [row.id, Number(row.version_id)]));
  }

  async addNotifications(notifications: readonly QueuedNotification[]): Promise<void> {
    if (notifications.length === 0) return;
    await this.unitOfWork.manager.query(
      `INSERT INTO subscription_notification
         (subscription_id, resource_type, resource_id, version_id, created_at, status, next_attempt_at)
       SELECT q.subscription_id, q.resource_type, q.resource_id, q.version_id, now(), 'pending', now()
         FROM unnest($1::text[], $2::text[], $3::text[], $4::integer[])
              WITH ORDINALITY AS q(subscription_id, resource_type, resource_id, version_id, n)
        ORDER BY q.n`,
      [
        notifications.map((notification) => notification.subscriptionId),
        notifications.map((notification) => notification.type),
        notifications.map((notification) => notification.id),
        notifications.map((notification) => notification.versionId),
      ],
    );
  }

  /**
   * The oldest due notification that heads its Subscription's queue, locked until the
   * transaction ends, unless another worker holds it. Only heads are claimed: while one is sent
   * or waits for its retry, its Subscription's later ones wait too. Two workers never hold rows
   * of one Subscription: the claim also takes the Subscription's advisory lock, and a head whose
   * Subscription another worker holds is given back. The head alone did not ensure it: a
   * notification queued earlier (a lower seq) whose transaction committed while another worker
   * was sending the head it could see was a head too; until 2026-12-07 a second worker claimed
   * it, both POSTed, and their settles, each updating the other's row, deadlocked (PostgreSQL
   * ended one, its POST sent again and an error logged). The lock is held while the
   * notification is sent, at most `holdMs`
   * without a statement: an instance that hangs meanwhile (a frozen process, a network cut from
   * the database) has its session ended by PostgreSQL, and another instance takes the
   * notification. Until 2026-12-07 such an instance held the Subscription's whole queue: after
   * a network cut until PostgreSQL's TCP keepalive gave up on it, two hours by default; frozen,
   * for as long as it stayed so, its host's kernel answering the keepalives. The Subscriptions
   * of `passOver` are passed over (their endpoint is being sent to by this instance).
   */
  async claimNext(
    holdMs: number,
    passOver: readonly string[] = [],
  ): Promise<PendingNotification | undefined> {
    await this.unitOfWork.manager.query(
      `SELECT set_config('idle_in_transaction_session_timeout', $1, true)`,
      [String(Math.ceil(holdMs))],
    );
    // Each Subscription given back is passed over: as many rounds as other workers sending.
    const served = [...passOver];
    for (;;) {
      try {
        return await this.unitOfWork.savepoint(() => this.claimHead(served));
      } catch (error) {
        if (!(error instanceof ServedElsewhere)) throw error;
        served.push(error.subscriptionId);
      }
    }
  }

  /**
   * Claims the first head of a Subscription not in `served`, and its Subscription's lock; throws
   * ServedElsewhere when another worker holds that, for the caller's savepoint to release the
   * row. Two Subscriptions whose ids hash alike share a lock: the second waits its turn.
   */
  private async claimHead(served: readonly string[]): Promise<PendingNotification | undefined> {
    const { manager } = this.unitOfWork;
    const [row] = await manager.query<
      {
        seq: string;
        subscription_id: string;
        resource_type: string;
        resource_id: string;
        version_id: number;
        attempts: number;
      }[]
    >(
      `SELECT n.seq, n.subscription_id, n.resource_type, n.resource_id, n.version_id, n.attempts
         FROM subscription_notification n
        WHERE n.status = 'pending' AND n.next_attempt_at <= now()
          AND n.subscription_id <> ALL($1::text[])
          AND NOT EXISTS (SELECT 1 FROM subscription_notification e
                           WHERE e.subscription_id = n.subscription_id AND e.status = 'pending'
                             AND e.seq < n.seq)
        ORDER BY n.next_attempt_at, n.seq
        LIMIT 1
        FOR UPDATE SKIP LOCKED`,
      [served],
    );
    if (!row) return undefined;
    const [lock] = await manager.query<{ held: boolean }[]>(
      `SELECT pg_try_advisory_xact_lock($1, hashtext($2)) AS held`,
      [CLAIM_LOCK, row.subscription_id],
    );
    if (!lock!.held) throw new ServedElsewhere(row.subscription_id);
    return (
      row && {
        seq: row.seq,
        subscriptionId: row.subscription_id,
        resourceType: row.resource_type,
        resourceId: row.resource_id,
        versionId: row.version_id,
        attempts: row.attempts,
      }
    );
  }

  /**
   * Deletes up to `limit` notifications delivered or cancelled that were queued before
   * `before`; the number deleted. What was given up stays: its Subscription, started again,
   * sends it (save), and no more is queued for one given up. Rows another instance is deleting
   * are skipped.
   */
  async purgeSettled(before: Date, limit: number): Promise<number> {
    const rows = await this.unitOfWork.manager.query<{ seq: string }[]>(
      // Under WITH the statement is a SELECT, so the driver returns rows rather than a count.
      `WITH purged AS (
         DELETE FROM subscription_notification WHERE seq IN (
           SELECT seq FROM subscription_notification
            WHERE ${settledBefore('$1')}
            LIMIT $2
            FOR UPDATE SKIP LOCKED)
         RETURNING seq)
       SELECT seq FROM purged`,
      [before, limit],
    );
    return rows.length;
  }

  /** The seqs of the Subscription's pending notifications that have committed by now. */
  async pendingOf(subscriptionId: string): Promise<string[]> {
    const rows = await this.unitOfWork.manager.query<{ seq: string }[]>(
      `SELECT seq FROM subscription_notification WHERE subscription_id = $1 AND status = 'pending'`,
      [subscriptionId],
    );
    return rows.map((row) => row.seq);
  }

  /**
   * Records the head's outcome. A delivered notification answers for `covered`, those queued
   * behind it that had committed before it was sent (a notification carries no payload: the
   * receiver reads everything that changed, and a later change gets a notification of its own);
   * a Subscription that is gone or given up takes its whole queue with it; a retry leaves the
   * queue. Returns how many notifications the outcome settled.
   */
  async settle(
    head: PendingNotification,
    outcome: NotificationOutcome,
    covered: readonly string[],
  ): Promise<number> {
    const { manager } = this.unitOfWork;
    if (outcome.status === 'pending') {
      await manager.query(
        `UPDATE subscription_notification SET attempts = $2, last_error = $3, next_attempt_at = $4
          WHERE seq = $1`,
        [head.seq, outcome.attempts, outcome.lastError, outcome.nextAttemptAt],
      );
      return 0;
    }
    const rows = await manager.query<{ seq: string }[]>(
      // Under WITH the statement is a SELECT, so the driver returns rows rather than a count.
      `WITH settled AS (
         UPDATE subscription_notification
            SET status = $3, attempts = CASE WHEN seq = $2 THEN $4 ELSE attempts END,
                last_error = $5, sent_at = CASE WHEN $3 = 'sent' THEN now() END
          WHERE subscription_id = $1 AND status = 'pending'
            AND ($3 <> 'sent' OR seq = ANY($6::bigint[]))
          RETURNING seq)
       SELECT seq FROM settled`,
      [head.subscriptionId, head.seq, outcome.status, outcome.attempts, outcome.lastError, covered],
    );
    return rows.length;
  }
}
