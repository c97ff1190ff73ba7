import { isDeepStrictEqual } from 'node:util';
import {
  Injectable,
  Logger,
  type OnApplicationBootstrap,
  type OnModuleDestroy,
} from '@nestjs/common';
import { AuditTrail } from '../audit/audit-trail.js';
import { AppConfig } from '../config/config.js';
import { UnitOfWork } from '../database/unit-of-work.js';
import { FhirDefinitions } from '../fhir/fhir-definitions.js';
import type { FhirResource } from '../fhir/fhir-types.js';
import { ResourceRepository } from '../fhir/resource.repository.js';
import { notificationAuditEntry } from './notification-audit.js';
import { failureOf } from './subscription-errors.js';
import {
  refusalOf,
  repeatedHeader,
  storedPlan,
  type SubscriptionPlan,
} from './subscription-plan.js';
import { SubscriptionRegistry } from './subscription-registry.js';
import { activated, currentSubscription, SubscriptionStatuses } from './subscription-statuses.js';
import {
  SubscriptionRepository,
  type NotificationOutcome,
  type PendingNotification,
} from './subscription.repository.js';

const MAX_RETRY_MS = 5 * 60_000;
const SEND_TIMEOUT_MS = 10_000;
/** Beyond the longest a send may take (the send timeout), before a hung instance lets go. */
const HOLD_MARGIN_MS = 10_000;
/**
 * The registry is re-read (and `requested` Subscriptions activated) every this many poll
 * intervals, by the clock: deliveries to slow endpoints (up to 10 s each) do not put it off.
 */
const REFRESH_EVERY_POLLS = 5;
/**
 * Notifications sent at once, each to a distinct endpoint: a slow or hanging receiver holds up
 * one sender, not every Subscription's. Each holds a database connection while it sends (up to
 * the send timeout), so there are at most a quarter of DATABASE_POOL_SIZE of them, and at least
 * one: four hanging receivers must not take a small pool (several instances sharing a server's
 * connections) from clinicians' requests.
 */
const MAX_SENDERS = 4;

/** How many notifications are sent at once with a pool of this many connections. */
export function sendersFor(poolSize: number): number {
  return Math.max(1, Math.min(MAX_SENDERS, Math.floor(poolSize / 4)));
}
/**
 * Notifications delivered or cancelled are deleted this long after they were queued, as the
 * notifier starts and then hourly (until 2026-12-07 they were kept for good, a row per change).
 */
const KEEP_SETTLED_MS = 7 * 24 * 3_600_000;
const PURGE_EVERY_MS = 3_600_000;
const PURGE_BATCH = 1_000;
const PURGE_BATCHES = 100;

/**
 * Delivers Subscription notifications: R4 rest-hook with no payload, a POST with no body to
 * the endpoint with the Subscription's headers. The notification stays locked (its transaction
 * open) while it is sent, so another instance skips it, until an instance hung mid-send has been
 * idle past the send timeout and a margin: delivery is at least once. A delivered one answers
 * for all queued behind it; after SUBSCRIPTION_MAX_ATTEMPTS failures the Subscription is set to
 * `error`, with the reason in `Subscription.error`, as R4 describes. Senders send at once, to
 * distinct endpoints, each in its own transaction, so one Subscription's order holds (its head
 * alone is claimed, under its lock) while a hanging receiver holds up only its own. Beside them,
 * every few polls, it re-reads the Subscriptions and sets the statuses due (SubscriptionStatuses).
 */
@Injectable()
export class SubscriptionNotifier implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger('Subscriptions');
  private stopped = false;
  private loop: Promise<void> | undefined;
  /** Wakes each idle sender. */
  private readonly idle = new Set<() => void>();
  /** Wakes the keeper (when stopping). */
  private readonly resting = new Set<() => void>();
  /** Whether an idle sender looks every poll interval (the others less often, until woken). */
  private watched = false;
  /** The endpoints a sender here is sending to now. */
  private readonly sending = new Set<string>();
  /** Subscriptions given back while their endpoint was being sent to, by endpoint. */
  private readonly waiting = new Map<string, string>();
  /** Aborts a notification in flight when the service stops. */
  private readonly stopping = new AbortController();
  private readonly settings: AppConfig['subscriptions'];
  private readonly senders: number;

  constructor(
    config: AppConfig,
    private readonly unitOfWork: UnitOfWork,
    private readonly repository: SubscriptionRepository,
    private readonly registry: SubscriptionRegistry,
    private readonly resources: ResourceRepository,
    private readonly definitions: FhirDefinitions,
    private readonly statuses: SubscriptionStatuses,
    private readonly trail: AuditTrail,
  ) {
    this.settings = config.subscriptions;
    this.senders = sendersFor(config.databasePool.size);
  }

  onApplicationBootstrap(): void {
    if (this.settings.endpoints.length === 0) return;
    const senders = Array.from({ length: this.senders }, () => this.sender());
    this.loop = Promise.all([this.keeper(), ...senders]).then(() => undefined);
  }

  async onModuleDestroy(): Promise<void> {
    this.stopped = true;
    this.stopping.abort();
    for (const wake of [...this.idle, ...this.resting]) wake();
    await this.loop;
  }

  /**
   * Re-reads the Subscriptions and sets the statuses due, every few poll intervals by the clock,
   * beside the senders: a slow endpoint puts off neither.
   */
  private async keeper(): Promise<void> {
    let purged = -Infinity;
    while (!this.stopped) {
      try {
        await this.registry.refresh();
        await this.statuses.setDue();
        if (performance.now() - purged >= PURGE_EVERY_MS) {
          purged = performance.now();
          await this.purge();
        }
      } catch (error) {
        if (this.stopped) break;
        this.logger.error(
          { error: (error as Error).name },
          'Subscription statuses could not be recorded',
        );
      }
      await this.sleep(REFRESH_EVERY_POLLS * this.settings.pollMs, this.resting);
    }
  }

  /**
   * Keeps the outbox bounded: deletes what was delivered or cancelled KEEP_SETTLED_MS ago, in
   * batches (each its own statement), at most PURGE_BATCHES of them a round. The audit trail,
   * not the outbox, records deliveries.
   */
  private async purge(): Promise<void> {
    const before = new Date(Date.now() - KEEP_SETTLED_MS);
    for (let batch = 0; batch < PURGE_BATCHES && !this.stopped; batch++) {
      if ((await this.repository.purgeSettled(before, PURGE_BATCH)) < PURGE_BATCH) return;
    }
  }

  /**
   * One of the senders: delivers due notifications one after another. An idle one looks again
   * every poll interval while it watches for the others (one watches at a time); a claim wakes
   * the others, as more may be due.
   */
  private async sender(): Promise<void> {
    while (!this.stopped) {
      let claimed = false;
      try {
        claimed = await this.deliverNext();
      } catch (error) {
        if (this.stopped) break;
        this.logger.error(
          { error: (error as Error).name },
          'Subscription notification could not be recorded',
        );
      }
      if (claimed) continue;
      const watching = !this.watched;
      this.watched = true;
      await this.sleep((watching ? 1 : REFRESH_EVERY_POLLS) * this.settings.pollMs, this.idle);
      if (watching) this.watched = false;
    }
  }

  /**
   * The Subscriptions to pass over now: their endpoint is being sent to by another sender here,
   * as it was when one was last claimed and given back.
   */
  private passOver(): string[] {
    const passed: string[] = [];
    for (const [subscription, endpoint] of this.waiting) {
      if (this.sending.has(endpoint)) passed.push(subscription);
      else this.waiting.delete(subscription);
    }
    return passed;
  }

  /**
   * Delivers (or settles) the next due notification; true when there was one, or one was given
   * back for its endpoint being sent to already.
   */
  private async deliverNext(): Promise<boolean> {
    let given: Delivered | undefined;
    try {
      given = await this.unitOfWork.run(() => this.claimAndSend());
    } catch (error) {
      if (!(error instanceof EndpointBusy)) throw error;
      this.waiting.set(error.subscriptionId, error.endpoint);
      return true;
    }
    if (given?.subscription && given.outcome.status === 'cancelled') {
      // Cancelled for having ended (one written before its end was recorded, say): turned off.
      await this.statuses.turnOffIfEnded(given.subscription);
    }
    if (given?.refused !== undefined) {
      await this.statuses.refuseStored(given.subscription!.id!, given.refused);
    }
    if (given?.repeated !== undefined) {
      await this.statuses.refuseRepeated(given.subscription!.id!, given.repeated);
    }
    if (given?.stopped) {
      await this.statuses.setDeliveryFailed(given.subscription!, given.outcome.lastError);
    }
    return given !== undefined;
  }

  /**
   * Claims the next due head and sends it (or settles it unsent), in the caller's transaction.
   * One whose endpoint another sender here is sending to is given back (EndpointBusy), so that
   * an endpoint shared by many Subscriptions takes one sender, not all of them.
   */
  private async claimAndSend(): Promise<Delivered | undefined> {
    const head = await this.repository.claimNext(SEND_TIMEOUT_MS + HOLD_MARGIN_MS, this.passOver());
    if (!head) return undefined;
    // More may be due: the idle senders look too.
    this.wakeIdle();
    const subscription = await currentSubscription(this.resources, head.subscriptionId);
    const plan = subscription && this.planOf(subscription);
    let outcome: NotificationOutcome;
    let covered: string[] = [];
    // Given up on: nothing more is queued for it, whether or not its status can be set below.
    let stopped = false;
    // The version given up on, which is set to error below.
    let givenUp: FhirResource | undefined;
    // A header name the Subscription gives twice, which refuses it.
    let repeated: string | undefined;
    // Why this server refuses it now, though it accepted it (set to error below).
    let refused: string | undefined;
    if (
      !subscription ||
      !plan?.active ||
      (await this.repository.revocationOf(head.subscriptionId)) !== undefined
    ) {
      // Deleted, switched off, ended or no longer valid since the change was queued, or its
      // owner disabled: from the moment that commits, before its status says so.
      outcome = { status: 'cancelled', attempts: head.attempts, lastError: null };
      refused = subscription && !plan ? this.refusalOf(subscription) : undefined;
    } else {
      repeated = repeatedHeader(plan.headers);
      if (repeated !== undefined) {
        // Stored before two headers of one name were refused: not sent, set to error below.
        outcome = { status: 'cancelled', attempts: head.attempts, lastError: 'duplicate-header' };
      } else {
        if (this.sending.has(plan.endpoint)) {
          throw new EndpointBusy(head.subscriptionId, plan.endpoint);
        }
        this.sending.add(plan.endpoint);
        let failure: string | undefined;
        try {
          covered = await this.repository.pendingOf(head.subscriptionId);
          failure = await this.send(plan);
        } finally {
          this.sending.delete(plan.endpoint);
        }
        if (failure === undefined) outcome = sent(head);
        else ({ outcome, givenUp } = await this.failed(head, subscription, failure));
        stopped = givenUp !== undefined;
      }
    }
    const settled = await this.repository.settle(head, outcome, covered);
    if (outcome.status === 'sent' || outcome.status === 'dead') {
      await this.trail.recordInTransaction(
        notificationAuditEntry(head, outcome, plan?.endpoint, settled),
      );
    }
    if (stopped) this.registry.forget(head.subscriptionId);
    if (outcome.status !== 'sent' && outcome.status !== 'cancelled') {
      this.logger.warn(
        {
          subscription: head.subscriptionId,
          attempts: outcome.attempts,
          reason: outcome.lastError,
        },
        'Subscription notification not delivered',
      );
    }
    return { subscription: givenUp ?? subscription, outcome, repeated, refused, stopped };
  }

  private planOf(subscription: FhirResource): SubscriptionPlan | undefined {
    return storedPlan(subscription, this.settings.endpoints, (type) =>
      this.definitions.isResourceType(type),
    );
  }

  private refusalOf(subscription: FhirResource): string | undefined {
    return refusalOf(subscription, this.settings.endpoints, (type) =>
      this.definitions.isResourceType(type),
    );
  }

  /** Undefined when delivered (a 2xx), else why not, without the URL (it may hold a secret). */
  private async send(plan: SubscriptionPlan): Promise<string | undefined> {
    try {
      const response = await fetch(plan.endpoint, {
        method: 'POST',
        headers: plan.headers,
        // A redirect could lead anywhere, past SUBSCRIPTION_ENDPOINTS.
        redirect: 'error',
        signal: AbortSignal.any([AbortSignal.timeout(SEND_TIMEOUT_MS), this.stopping.signal]),
      });
      await response.body?.cancel();
      return response.ok ? undefined : `HTTP ${response.status}`;
    } catch (error) {
      // Interrupted by shutdown: rolled back, so the attempt does not count against it.
      if (this.stopped) throw error;
      return failureOf(error);
    }
  }

  /**
   * The outcome of a failed attempt. The last one gives up on the Subscription (`givenUp`, the
   * version stopped) if it is still the version whose deliveries failed, or that version as the
   * server made it `active`; a version its owner wrote while the attempt was under way (a new
   * endpoint, say) is theirs, and its notifications are tried afresh. Until 2026-12-07 it was
   * given up on too, left `requested` or `active` with nothing ever sent; and the server's own
   * activation during the last attempt (a Subscription failing from its first notification)
   * had the attempts start again, the receiver sent twice SUBSCRIPTION_MAX_ATTEMPTS POSTs where
   * the outbox and audit row counted SUBSCRIPTION_MAX_ATTEMPTS.
   */
  private async failed(
    head: PendingNotification,
    subscription: FhirResource,
    reason: string,
  ): Promise<{ outcome: NotificationOutcome; givenUp?: FhirResource }> {
    const outcome = this.failure(head, reason);
    if (outcome.status !== 'dead') return { outcome };
    const id = head.subscriptionId;
    if (await this.repository.stopAtVersion(id, Number(subscription.meta?.versionId))) {
      return { outcome, givenUp: subscription };
    }
    // Read under the lock stopAtVersion took: an activation committed before it is seen here.
    const current = await currentSubscription(this.resources, id);
    if (
      current &&
      sameContent(activated(subscription), current) &&
      (await this.repository.stopAtVersion(id, Number(current.meta?.versionId)))
    ) {
      return { outcome, givenUp: current };
    }
    return {
      outcome: { status: 'pending', attempts: 0, lastError: reason, nextAttemptAt: new Date() },
    };
  }

  private failure(head: PendingNotification, reason: string): NotificationOutcome {
    const { maxAttempts, retryMs } = this.settings;
    const attempts = head.attempts + 1;
    if (attempts >= maxAttempts) return { status: 'dead', attempts, lastError: reason };
    const delay = Math.min(retryMs * 2 ** (attempts - 1), MAX_RETRY_MS);
    return {
      status: 'pending',
      attempts,
      lastError: reason,
      nextAttemptAt: new Date(Date.now() + delay),
    };
  }

  /** Sleeps `ms`, or until woken through `wakers`. */
  private sleep(ms: number, wakers: Set<() => void>): Promise<void> {
    if (this.stopped) return Promise.resolve();
    return new Promise((resolve) => {
      const wake = (): void => {
        clearTimeout(timer);
        wakers.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      wakers.add(wake);
    });
  }

  private wakeIdle(): void {
    for (const wake of [...this.idle]) wake();
  }
}

/** What a claim came to, for the statuses set after its transaction. */
interface Delivered {
  subscription: FhirResource | undefined;
  outcome: NotificationOutcome;
  repeated: string | undefined;
  refused: string | undefined;
  stopped: boolean;
}

/** A claimed head whose endpoint another sender here is sending to: given back, unsent. */
class EndpointBusy extends Error {
  constructor(
    readonly subscriptionId: string,
    readonly endpoint: string,
  ) {
    super('The endpoint is being sent to');
  }
}

/** Whether two versions of a resource say the same, whatever their version and time. */
function sameContent(left: FhirResource | undefined, right: FhirResource): boolean {
  const content = (resource: FhirResource): FhirResource => ({
    ...resource,
    meta: { ...resource.meta, versionId: undefined, lastUpdated: undefined },
  });
  return left !== undefined && isDeepStrictEqual(content(left), content(right));
}

function sent(head: PendingNotification): NotificationOutcome {
  return { status: 'sent', attempts: head.attempts + 1, lastError: null };
}
