import {
  Injectable,
  Logger,
  type OnApplicationBootstrap,
  type OnModuleDestroy,
} from '@nestjs/common';
import { AuditTrail } from '../audit/audit-trail.js';
import { AppError } from '../common/errors/app-error.js';
import { AppConfig } from '../config/config.js';
import { UnitOfWork } from '../database/unit-of-work.js';
import { FhirDefinitions } from '../fhir/fhir-definitions.js';
import type { FhirResource } from '../fhir/fhir-types.js';
import { FhirService } from '../fhir/fhir.service.js';
import { ResourceRepository } from '../fhir/resource.repository.js';
import { notificationAuditEntry, stateAuditEntry } from './notification-audit.js';
import {
  deliveryFailedError,
  failureOf,
  ownerDisabledError,
  repeatedHeaderError,
} from './subscription-errors.js';
import { repeatedHeader, subscriptionPlan, type SubscriptionPlan } from './subscription-plan.js';
import { SubscriptionRegistry } from './subscription-registry.js';
import {
  SubscriptionRepository,
  type NotificationOutcome,
  type PendingNotification,
} from './subscription.repository.js';
import { SUBSCRIPTIONS_USER } from './subscriptions-user.js';

const MAX_RETRY_MS = 5 * 60_000;
const SEND_TIMEOUT_MS = 10_000;
/**
 * The registry is re-read (and `requested` Subscriptions activated) every this many poll
 * intervals, by the clock: deliveries to slow endpoints (up to 10 s each) do not put it off.
 */
const REFRESH_EVERY_POLLS = 5;
const ACTIVATIONS_PER_ROUND = 20;
const LIVE_STATUSES = new Set(['requested', 'active']);

/**
 * Delivers Subscription notifications: R4 rest-hook with no payload, a POST with no body to
 * the endpoint with the Subscription's headers. The notification stays locked (its transaction
 * open) while it is sent, so another instance skips it: delivery is at least once. A delivered
 * one answers for all queued behind it; after SUBSCRIPTION_MAX_ATTEMPTS failures the
 * Subscription is set to `error`, with the reason in `Subscription.error`, as R4 describes.
 */
@Injectable()
export class SubscriptionNotifier implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger('Subscriptions');
  private stopped = false;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  /** Aborts a notification in flight when the service stops. */
  private readonly stopping = new AbortController();
  /**
   * The version of each Subscription whose rewrite was refused other than by a concurrent
   * change (it no longer validates, it is restricted): as it stands it would be refused every
   * round, so it is tried again only once it has changed (its owner's fix) or is gone.
   */
  private readonly refused = new Map<string, string>();
  private readonly settings: AppConfig['subscriptions'];

  constructor(
    config: AppConfig,
    private readonly unitOfWork: UnitOfWork,
    private readonly repository: SubscriptionRepository,
    private readonly registry: SubscriptionRegistry,
    private readonly resources: ResourceRepository,
    private readonly definitions: FhirDefinitions,
    private readonly fhir: FhirService,
    private readonly trail: AuditTrail,
  ) {
    this.settings = config.subscriptions;
  }

  onApplicationBootstrap(): void {
    if (this.settings.endpoints.length > 0) this.loop = this.run();
  }

  async onModuleDestroy(): Promise<void> {
    this.stopped = true;
    this.stopping.abort();
    this.wake?.();
    await this.loop;
  }

  private async run(): Promise<void> {
    let refreshed = -Infinity;
    while (!this.stopped) {
      let delivered = false;
      try {
        if (performance.now() - refreshed >= REFRESH_EVERY_POLLS * this.settings.pollMs) {
          refreshed = performance.now();
          await this.registry.refresh();
          await this.stopRevoked();
          await this.activateRequested();
          await this.setFailedToError();
          await this.setEndedOff();
        }
        delivered = await this.deliverNext();
      } catch (error) {
        if (this.stopped) break;
        this.logger.error(
          { error: (error as Error).name },
          'Subscription notification could not be recorded',
        );
      }
      if (!delivered) await this.sleep(this.settings.pollMs);
    }
  }

  /** Delivers (or settles) the next due notification; true when there was one. */
  private async deliverNext(): Promise<boolean> {
    const given = await this.unitOfWork.run(async () => {
      const head = await this.repository.claimNext();
      if (!head) return undefined;
      const subscription = await this.subscription(head.subscriptionId);
      const plan = subscription && this.planOf(subscription);
      let outcome: NotificationOutcome;
      let covered: string[] = [];
      // A header name the Subscription gives twice, which refuses it.
      let repeated: string | undefined;
      if (
        !subscription ||
        !plan?.active ||
        (await this.repository.revocationOf(head.subscriptionId)) !== undefined
      ) {
        // Deleted, switched off, ended or no longer valid since the change was queued, or its
        // owner disabled: from the moment that commits, before stopRevoked says so.
        outcome = { status: 'cancelled', attempts: head.attempts, lastError: null };
      } else {
        repeated = repeatedHeader(plan.headers);
        if (repeated !== undefined) {
          // Stored before two headers of one name were refused: not sent, set to error below.
          outcome = { status: 'cancelled', attempts: head.attempts, lastError: 'duplicate-header' };
        } else {
          covered = await this.repository.pendingOf(head.subscriptionId);
          const failure = await this.send(plan);
          outcome = failure === undefined ? sent(head) : this.failure(head, failure);
        }
      }
      const settled = await this.repository.settle(head, outcome, covered);
      if (outcome.status === 'sent' || outcome.status === 'dead') {
        await this.trail.recordInTransaction(
          notificationAuditEntry(head, outcome, plan?.endpoint, settled),
        );
      }
      if (outcome.status === 'dead') {
        // Nothing more is queued for it, whether or not its status can be set below.
        await this.repository.setState(head.subscriptionId, undefined, false);
        this.registry.forget(head.subscriptionId);
      }
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
      return { subscription, outcome, repeated };
    });
    if (given?.subscription && given.outcome.status === 'cancelled') {
      // Cancelled for having ended (one written before its end was recorded, say): turned off.
      if (this.hasEnded(given.subscription)) await this.turnOff(given.subscription.id!);
    }
    if (given?.repeated !== undefined) {
      await this.refuseRepeated(given.subscription!.id!, given.repeated);
    }
    if (given?.outcome.status === 'dead') {
      // In a transaction of its own: should the update fail (a restricted Subscription, one
      // that no longer validates), the give-up above stands and is not retried every poll.
      await this.setError(given.subscription!, given.outcome.lastError).catch((error: unknown) =>
        this.logger.error(
          { subscription: given.subscription!.id, reason: (error as Error).message },
          'Subscription could not be set to error',
        ),
      );
    }
    return given !== undefined;
  }

  /**
   * R4: the server sets an accepted `requested` Subscription to `active`. Done here rather
   * than as it is written, because the write cannot change what it stores; conditional on the
   * version read, so that a change its owner makes meanwhile is never overwritten.
   */
  private async activateRequested(): Promise<void> {
    for (const id of await this.repository.requested(ACTIVATIONS_PER_ROUND)) {
      await this.rewrite(
        id,
        'active',
        (subscription) => {
          if (subscription['status'] !== 'requested') return undefined;
          // Set back to `requested` after an error, it starts again without the old reason.
          const active: FhirResource = { ...subscription, status: 'active' };
          delete active['error'];
          return active;
        },
        'active accepted',
      );
    }
  }

  /**
   * R4: a Subscription the server cannot process gets status `error` and the reason. One whose
   * owner was disabled (the account that wrote it, or the SMART app or backend client whose
   * token it was written with) is stopped so, audited, rather than left `active` with nothing
   * delivered; enabling the owner again does not restart it: whoever sets it back to
   * `requested` becomes its owner, as with every write.
   */
  private async stopRevoked(): Promise<void> {
    for (const { id, revocation, clientId } of await this.repository.revoked(
      ACTIVATIONS_PER_ROUND,
    )) {
      const detail = [`error owner=${revocation}-disabled`, clientId && `client=${clientId}`];
      await this.stopLive(id, ownerDisabledError(revocation), detail.filter(Boolean).join(' '));
    }
  }

  /**
   * R4: a Subscription the server cannot process gets status `error` and the reason: here one
   * stored, before such were refused, with a header name twice, which HTTP would send as one
   * header of both values. Audited as the change it is; its owner sends the headers again.
   */
  private refuseRepeated(id: string, name: string): Promise<void> {
    return this.stopLive(id, repeatedHeaderError(name), 'error duplicate-header');
  }

  /** Sets a Subscription still `requested` or `active` to `error` with the reason, audited. */
  private stopLive(id: string, error: string, audited: string): Promise<void> {
    return this.rewrite(
      id,
      'error',
      (subscription) =>
        LIVE_STATUSES.has(String(subscription['status']))
          ? { ...subscription, status: 'error', error }
          : undefined,
      audited,
    );
  }

  /** R4: the server turns a Subscription `off` at its `end`; from then it matched nothing. */
  private async setEndedOff(): Promise<void> {
    for (const id of await this.repository.ended(ACTIVATIONS_PER_ROUND)) {
      await this.turnOff(id);
    }
  }

  private turnOff(id: string): Promise<void> {
    return this.rewrite(
      id,
      'off',
      (subscription) =>
        this.hasEnded(subscription) ? { ...subscription, status: 'off' } : undefined,
      'off ended',
    );
  }

  /** Still `requested` or `active` by its status, and inactive all the same: past its `end`. */
  private hasEnded(subscription: FhirResource): boolean {
    const plan = this.planOf(subscription);
    return plan !== undefined && !plan.active && LIVE_STATUSES.has(plan.status);
  }

  /**
   * R4: a Subscription the server cannot process gets status `error` and the reason. The
   * registry stopped these as their criteria failed in a write, which could not wait for this.
   */
  private async setFailedToError(): Promise<void> {
    for (const { id, failure } of await this.repository.failed(ACTIVATIONS_PER_ROUND)) {
      // The reason stays out of the audit row: it is PostgreSQL's message about the criteria.
      await this.rewrite(
        id,
        'error',
        (subscription) => ({ ...subscription, status: 'error', error: failure }),
        'error criteria-failed',
      );
    }
  }

  /**
   * Writes the Subscription as `change` makes it (nothing when it gives undefined), as the
   * system, conditional on the version read, so that a change its owner makes meanwhile is
   * never overwritten; an audit row with the detail `audited` commits with it.
   */
  private async rewrite(
    id: string,
    status: string,
    change: (subscription: FhirResource) => FhirResource | undefined,
    audited: string,
  ): Promise<void> {
    let version: string | undefined;
    await this.unitOfWork
      .run(async () => {
        const subscription = await this.subscription(id);
        version = subscription?.meta?.versionId;
        if (version !== undefined && this.refused.get(id) === version) return;
        // Changed since it was refused, or gone: tried afresh, or forgotten.
        this.refused.delete(id);
        const changed = subscription && change(subscription);
        if (!changed) return;
        await this.writeStatus(changed, version, audited);
      })
      .catch((error: unknown) => {
        // Refused as it stands (it no longer validates, say) it would be refused again; a
        // concurrent change (412) or an unavailable database is tried again next round.
        if (
          version !== undefined &&
          error instanceof AppError &&
          error.status < 500 &&
          error.status !== 412
        ) {
          this.refused.set(id, version);
        }
        this.logger.warn(
          { subscription: id, reason: (error as Error).message },
          `Subscription could not be set to ${status}`,
        );
      });
  }

  private async subscription(id: string): Promise<FhirResource | undefined> {
    const row = await this.resources.findCurrent('Subscription', id);
    return row && !row.deleted && row.content
      ? (JSON.parse(row.content) as FhirResource)
      : undefined;
  }

  private planOf(subscription: FhirResource): SubscriptionPlan | undefined {
    try {
      return subscriptionPlan(subscription, this.settings.endpoints, (type) =>
        this.definitions.isResourceType(type),
      );
    } catch {
      // Its endpoint is no longer allowed (SUBSCRIPTION_ENDPOINTS changed).
      return undefined;
    }
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

  /** R4: a Subscription whose notifications keep failing gets status `error` and the reason. */
  private setError(subscription: FhirResource, reason: string | null): Promise<void> {
    return this.unitOfWork.run(() =>
      this.writeStatus(
        {
          ...subscription,
          status: 'error',
          error: deliveryFailedError(this.settings.maxAttempts, reason),
        },
        // Its owner's change since it was read wins.
        subscription.meta?.versionId,
        'error delivery-failed',
      ),
    );
  }

  /**
   * Stores the Subscription with the status the notifier gave it, as the system, if it is
   * still at `versionId`, and its audit row with `detail`: a change of status the system makes
   * on its own is a change of the resource like any other, committed with its audit row.
   */
  private async writeStatus(
    changed: FhirResource,
    versionId: string | undefined,
    detail: string,
  ): Promise<void> {
    const id = changed.id!;
    const { stored } = await this.fhir.update(
      SUBSCRIPTIONS_USER,
      'Subscription',
      id,
      changed,
      `W/"${versionId}"`,
    );
    // Stored as it already was: no new version, so no row.
    if (stored.unchanged) return;
    await this.trail.recordInTransaction(stateAuditEntry(id, String(stored.versionId), detail));
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.wake = undefined;
        resolve();
      }, ms);
      this.wake = () => {
        clearTimeout(timer);
        this.wake = undefined;
        resolve();
      };
    });
  }
}

function sent(head: PendingNotification): NotificationOutcome {
  return { status: 'sent', attempts: head.attempts + 1, lastError: null };
}
