import { Injectable, Logger } from '@nestjs/common';
import { AuditTrail } from '../audit/audit-trail.js';
import { AppError } from '../common/errors/app-error.js';
import { AppConfig } from '../config/config.js';
import { UnitOfWork } from '../database/unit-of-work.js';
import { FhirDefinitions } from '../fhir/fhir-definitions.js';
import type { FhirResource } from '../fhir/fhir-types.js';
import { FhirService } from '../fhir/fhir.service.js';
import { ResourceRepository } from '../fhir/resource.repository.js';
import { stateAuditEntry } from './notification-audit.js';
import {
  deliveryFailedError,
  ownerDisabledError,
  refusedError,
  repeatedHeaderError,
} from './subscription-errors.js';
import { storedPlan } from './subscription-plan.js';
import { SubscriptionRepository } from './subscription.repository.js';
import { SUBSCRIPTIONS_USER } from './subscriptions-user.js';

const ACTIVATIONS_PER_ROUND = 20;
const LIVE_STATUSES = new Set(['requested', 'active']);

/** The current version of a Subscription, with its header values; undefined once deleted. */
export async function currentSubscription(
  resources: ResourceRepository,
  id: string,
): Promise<FhirResource | undefined> {
  const row = await resources.findCurrent('Subscription', id);
  return row && !row.deleted && row.content ? (JSON.parse(row.content) as FhirResource) : undefined;
}

/**
 * The Subscription as the server makes it `active` (R4), when it is `requested`: set back to
 * `requested` after an error, it starts again without the old reason.
 */
export function activated(subscription: FhirResource): FhirResource | undefined {
  if (subscription['status'] !== 'requested') return undefined;
  const active: FhirResource = { ...subscription, status: 'active' };
  delete active['error'];
  return active;
}

/**
 * The statuses the server gives a Subscription on its own (R4): `active` for an accepted
 * `requested` one, `off` at its `end`, `error` with the reason when it cannot be processed.
 * Each is a new version written as the system, only if nobody changed the Subscription since
 * it was read, committed with its audit row.
 */
@Injectable()
export class SubscriptionStatuses {
  private readonly logger = new Logger('Subscriptions');
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
    private readonly resources: ResourceRepository,
    private readonly definitions: FhirDefinitions,
    private readonly fhir: FhirService,
    private readonly trail: AuditTrail,
  ) {
    this.settings = config.subscriptions;
  }

  /** A round's changes of status, up to ACTIVATIONS_PER_ROUND of each kind. */
  async setDue(): Promise<void> {
    await this.stopRevoked();
    await this.activateRequested();
    await this.setFailedToError();
    await this.setEndedOff();
  }

  /**
   * R4: a Subscription the server cannot process gets status `error` and the reason: here one
   * stored, before such were refused, with a header name twice, which HTTP would send as one
   * header of both values. Audited as the change it is; its owner sends the headers again.
   */
  refuseRepeated(id: string, name: string): Promise<void> {
    return this.stopLive(id, repeatedHeaderError(name), 'error duplicate-header');
  }

  /**
   * R4: a Subscription the server cannot process gets status `error` and the reason: here one
   * stored while this server accepted it, that it refuses now (its endpoint since dropped from
   * SUBSCRIPTION_ENDPOINTS, say). Until 2026-12-07 it stayed `active`, nothing ever sent.
   */
  refuseStored(id: string, reason: string): Promise<void> {
    return this.stopLive(id, refusedError(reason), 'error refused');
  }

  /** Turns off one still `requested` or `active` past its `end` (its notification cancelled). */
  async turnOffIfEnded(subscription: FhirResource): Promise<void> {
    if (this.hasEnded(subscription)) await this.turnOff(subscription.id!);
  }

  /**
   * R4: a Subscription whose notifications keep failing gets status `error` and the reason.
   * In a transaction of its own: should the update fail (a restricted Subscription, one that
   * no longer validates), the give-up already recorded stands and is not retried every poll.
   */
  async setDeliveryFailed(subscription: FhirResource, reason: string | null): Promise<void> {
    await this.unitOfWork
      .run(() =>
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
      )
      .catch((error: unknown) =>
        this.logger.error(
          { subscription: subscription.id, reason: (error as Error).message },
          'Subscription could not be set to error',
        ),
      );
  }

  /**
   * R4: the server sets an accepted `requested` Subscription to `active`. Done here rather
   * than as it is written, because the write cannot change what it stores; conditional on the
   * version read, so that a change its owner makes meanwhile is never overwritten.
   */
  private async activateRequested(): Promise<void> {
    for (const id of await this.repository.requested(ACTIVATIONS_PER_ROUND)) {
      await this.rewrite(id, 'active', activated, 'active accepted');
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
    const plan = storedPlan(subscription, this.settings.endpoints, (type) =>
      this.definitions.isResourceType(type),
    );
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
        const subscription = await currentSubscription(this.resources, id);
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
    // Its reason, in the audit row's fixed words, for an administrator's list (none to accept).
    const [status, ...reason] = detail.split(' ');
    await this.repository.setStatusReason(id, status === 'active' ? null : reason.join(' '));
    await this.trail.recordInTransaction(stateAuditEntry(id, String(stored.versionId), detail));
  }
}
