import type { AuthenticatedUser } from '../auth/authenticated-user.js';
import type { AppConfig } from '../config/config.js';
import type { UnitOfWork } from '../database/unit-of-work.js';
import type { FhirDefinitions } from '../fhir/fhir-definitions.js';
import type { FhirResource } from '../fhir/fhir-types.js';
import { ResourceWrites } from '../fhir/resource-writes.js';
import type { SearchService } from '../fhir/search/search.service.js';
import { SubscriptionRegistry } from './subscription-registry.js';
import type { StoredSubscription, SubscriptionRepository } from './subscription.repository.js';

const ENDPOINT = 'https://hooks.example.org/fhir/lab';
const doctor: AuthenticatedUser = {
  id: 'u-1',
  username: 'doctor',
  roles: ['doctor'],
  amr: [],
  authTime: 0,
};

/**
 * The registry's bookkeeping around re-reads, with the database and search replaced: a
 * re-read sees what had committed when it began, and answers when the test says; every
 * criteria matches.
 */
function setUp() {
  const committed: StoredSubscription[] = [];
  let staged: StoredSubscription[] = [];
  const reads: (() => void)[] = [];
  const queued: string[] = [];
  const repository = {
    save: (id: string, plan: { criteriaType: string; criteria: string; active: boolean }) => {
      const owner = { id: doctor.id, username: doctor.username, roles: ['doctor'] };
      if (plan.active) staged.push({ id, ...plan, owner });
      return Promise.resolve();
    },
    setState: () => Promise.resolve(),
    active: () => {
      const seen = [...committed];
      return new Promise<StoredSubscription[]>((resolve) => reads.push(() => resolve(seen)));
    },
    addNotification: (subscriptionId: string) => {
      queued.push(subscriptionId);
      return Promise.resolve();
    },
  };
  let pending: (() => void)[] | undefined;
  const unitOfWork = {
    afterCommit: (hook: () => void) => (pending ? pending.push(hook) : hook()),
  };
  const writes = new ResourceWrites();
  const registry = new SubscriptionRegistry(
    { subscriptions: { endpoints: ['https://hooks.example.org/fhir/'] } } as AppConfig,
    writes,
    {
      assertCriteria: () => undefined,
      matchingAmong: (_user: unknown, _type: string, _criteria: string, ids: string[]) =>
        Promise.resolve(new Set(ids)),
    } as unknown as SearchService,
    { isResourceType: (type: string) => type === 'Observation' } as unknown as FhirDefinitions,
    repository as unknown as SubscriptionRepository,
    unitOfWork as unknown as UnitOfWork,
  );
  registry.onModuleInit();
  const write = (resource: FhirResource) =>
    writes.written({ user: doctor, resource, created: true });
  return {
    registry,
    committed,
    queued,
    /** Lets the newest re-read under way answer, once there is one. */
    answer: async () => {
      while (reads.length === 0) await new Promise((resolve) => setImmediate(resolve));
      reads.pop()!();
    },
    /** Writes in a transaction that `end` commits or rolls back. */
    transaction: async (work: () => Promise<void>) => {
      pending = [];
      staged = [];
      await work();
      const [hooks, rows] = [pending, staged];
      pending = undefined;
      return {
        end: (commit: boolean) => {
          if (!commit) return;
          committed.push(...rows);
          hooks.forEach((hook) => hook());
        },
      };
    },
    subscribe: (id: string) =>
      write({
        resourceType: 'Subscription',
        id,
        meta: { versionId: '1' },
        status: 'requested',
        reason: 'lab results',
        criteria: 'Observation?code=http://loinc.org|2345-7',
        channel: { type: 'rest-hook', endpoint: ENDPOINT },
      }),
    observe: (id: string) =>
      write({ resourceType: 'Observation', id, meta: { versionId: '1' }, status: 'final' }),
  };
}

describe('SubscriptionRegistry', () => {
  it('keeps a Subscription committed while a re-read was under way that did not see it', async () => {
    const { registry, committed, queued, answer, transaction, subscribe, observe } = setUp();
    const refreshed = registry.refresh();
    const write = await transaction(() => subscribe('s-1'));
    write.end(true);
    // The read began before the commit: its rows do not have the new Subscription.
    await answer();
    await refreshed;
    await observe('o-1');
    expect(queued).toEqual(['s-1']);

    // A re-read begun after the commit decides: gone from the database (another instance
    // switched it off), it is matched no longer.
    committed.length = 0;
    const later = registry.refresh();
    await answer();
    await later;
    await observe('o-2');
    expect(queued).toEqual(['s-1']);
  });

  it('matches within the writing transaction, and forgets a rolled-back Subscription at the next re-read', async () => {
    const { registry, queued, answer, transaction, subscribe, observe } = setUp();
    const write = await transaction(async () => {
      await subscribe('s-2');
      await observe('o-3');
    });
    expect(queued).toEqual(['s-2']);
    write.end(false);
    const refreshed = registry.refresh();
    await answer();
    await refreshed;
    await observe('o-4');
    expect(queued).toEqual(['s-2']);
  });

  it('runs one re-read at a time, so an older read never replaces a newer one', async () => {
    const { registry, queued, answer, subscribe, transaction, observe } = setUp();
    const first = registry.refresh();
    const write = await transaction(() => subscribe('s-3'));
    write.end(true);
    const second = registry.refresh();
    // Were both reads under way, the newer (which sees the Subscription, and so forgets the
    // change) could finish first, and the older then replace what it found.
    await answer();
    await answer();
    await Promise.all([first, second]);
    await observe('o-5');
    expect(queued).toEqual(['s-3']);
  });
});
