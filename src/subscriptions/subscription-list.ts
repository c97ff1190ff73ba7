import { Injectable } from '@nestjs/common';
import { AppError } from '../common/errors/app-error.js';
import { UnitOfWork } from '../database/unit-of-work.js';
import { countOf, parametersOf, statusOf } from '../hl7/list-query.js';
import { SubscriptionRepository, type SubscriptionSummary } from './subscription.repository.js';

/** The statuses a Subscription may have, which the list takes. */
export const SUBSCRIPTION_LIST_STATUSES = ['error', 'requested', 'active', 'off'] as const;

/** What `GET /subscriptions` takes. */
export const SUBSCRIPTION_LIST_PARAMETERS = ['status', '_count', '_after'] as const;

/**
 * An administrator's list of Subscriptions by status, `error` above all: why the server gave it
 * (the fixed words of its audit row), whose they are, and what waits or was given up. An
 * administrator may not read Subscriptions (they are records), so without it the ones in error
 * could be found only through the audit trail or the metrics' count. Nothing of the criteria,
 * endpoint or headers is shown.
 */
@Injectable()
export class SubscriptionList {
  constructor(
    private readonly repository: SubscriptionRepository,
    private readonly unitOfWork: UnitOfWork,
  ) {}

  async byStatus(
    query: Record<string, unknown>,
  ): Promise<{ subscriptions: SubscriptionSummary[]; limit: number }> {
    const text = parametersOf(query, SUBSCRIPTION_LIST_PARAMETERS);
    const status = statusOf(SUBSCRIPTION_LIST_STATUSES, text['status']);
    const limit = countOf(text['_count']);
    const after = text['_after'];
    if (after !== undefined && !/^[A-Za-z0-9\-.]{1,64}$/.test(after)) {
      throw AppError.invalid('_after must be the id of a listed Subscription');
    }
    // One row more than the page says whether there is a next one.
    const subscriptions = await this.unitOfWork.run(() =>
      this.repository.listByStatus(status, after, limit + 1),
    );
    return { subscriptions, limit };
  }
}
