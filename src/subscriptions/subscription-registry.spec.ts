import type { ResourceAccess } from '../access/resource-access.js';
import type { AuthenticatedUser } from '../auth/authenticated-user.js';
import type { AppConfig } from '../config/config.js';
import type { UnitOfWork } from '../database/unit-of-work.js';
import type { FhirDefinitions } from '../fhir/fhir-definitions.js';
import type { FhirResource } from '../fhir/fhir-types.js';
import { ResourceWrites } from '../fhir/resource-writes.js';
import type { ResourceRepository } from '../fhir/resource.repository.js';
import type { SearchService } from '../fhir/search/search.service.js';
import type { SecurityContexts } from '../fhir/security-contexts.js';
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

interface Transaction {
  state: Map<object, unknown>;
  beforeCommit: (() => Promise<void>)[];
  afterCommit: (() => void)[];
  staged: StoredSubscription[];
}

/**
 * The registry's bookkeeping, with the database and search replaced: a transaction's hooks
 * run as UnitOfWork runs them, a re-read sees what had committed when it began and answers
 * when the test says, and every criteria matches every resource.
 */
function setUp() {
  const committed: StoredSubscription[] = [];
  const reads: (() => void)[] = [];
  const queued: string[] = [];
  const searches: string[][] = [];
  let current: Transaction | undefined;
  const repository = {
    save: (id: string, plan: { criteriaType: string; criteria: string; active: boolean }) => {
      const owner = { id: doctor.id, username: doctor.username, roles: ['doctor'] };
      if (plan.active) current!.staged.push({ id, ...plan, owner });
      return Promise.resolve();
    },
    setState: () => Promise.resolve(),
    activeOwnedBy: () => Promise.resolve(0),
    active: () => {
      const seen = [...committed];
      return new Promise<StoredSubscription[]>((resolve) => reads.push(() => resolve(seen)));
    },
    addNotifications: (notifications: { subscriptionId: string; id: string }[]) => {
      for (const { subscriptionId, id } of notifications) queued.push(`${subscriptionId} ${id}`);
      return Promise.resolve();
    },
  };
  const unitOfWork = {
    get inTransaction() {
      return current !== undefined;
    },
    stateOf: (
      owner: object,
      create: () => unknown,
      atCommit: (state: unknown) => Promise<void>,
    ) => {
      if (!current!.state.has(owner)) {
        const fresh = create();
        current!.state.set(owner, fresh);
        current!.beforeCommit.push(() => atCommit(fresh));
      }
      return current!.state.get(owner);
    },
    existingStateOf: (owner: object) => current?.state.get(owner),
    afterCommit: (hook: () => void) => (current ? current.afterCommit.push(hook) : hook()),
    savepoint: <T>(work: () => Promise<T>) => work(),
  };
  const writes = new ResourceWrites();
  const registry = new SubscriptionRegistry(
    { subscriptions: { endpoints: ['https://hooks.example.org/fhir/'] } } as AppConfig,
    writes,
    {
      assertCriteria: () => Promise.resolve(),
      matchingAmong: (_user: unknown, _type: string, _criteria: string, ids: string[]) => {
        searches.push(ids);
        return Promise.resolve(new Set(ids));
      },
    } as unknown as SearchService,
    { isResourceType: (type: string) => type === 'Observation' } as unknown as FhirDefinitions,
    repository as unknown as SubscriptionRepository,
    unitOfWork as unknown as UnitOfWork,
    // Observations are checked in the criteria's SQL alone (Binaries, by their context, are
    // checked again: the e2e tests).
    { countsInSql: () => true } as unknown as ResourceAccess,
    {} as ResourceRepository,
    {} as SecurityContexts,
  );
  registry.onModuleInit();
  const write = (resource: FhirResource) =>
    writes.written({ user: doctor, resource, created: true });
  return {
    registry,
    committed,
    queued,
    searches,
    /** Lets the newest re-read under way answer, once there is one. */
    answer: async () => {
      while (reads.length === 0) await new Promise((resolve) => setImmediate(resolve));
      reads.pop()!();
    },
    /** Writes in a transaction, which `commit` ends as UnitOfWork does; dropped, it rolls back. */
    transaction: async (work: () => Promise<void>) => {
      const transaction: Transaction = {
        state: new Map(),
        beforeCommit: [],
        afterCommit: [],
        staged: [],
      };
      current = transaction;
      await work();
      current = undefined;
      return {
        commit: async () => {
          current = transaction;
          while (transaction.beforeCommit.length > 0) await transaction.beforeCommit.shift()!();
          current = undefined;
          committed.push(...transaction.staged);
          transaction.afterCommit.forEach((hook) => hook());
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
    await (await transaction(() => subscribe('s-1'))).commit();
    // The read began before the commit: its rows do not have the new Subscription.
    await answer();
    await refreshed;
    await (await transaction(() => observe('o-1'))).commit();
    expect(queued).toEqual(['s-1 o-1']);

    // A re-read begun after the commit decides: gone from the database (another instance
    // switched it off), it is matched no longer.
    committed.length = 0;
    const later = registry.refresh();
    await answer();
    await later;
    await (await transaction(() => observe('o-2'))).commit();
    expect(queued).toEqual(['s-1 o-1']);
  });

  it('runs one re-read at a time, so an older read never replaces a newer one', async () => {
    const { registry, queued, answer, subscribe, transaction, observe } = setUp();
    const first = registry.refresh();
    await (await transaction(() => subscribe('s-3'))).commit();
    const second = registry.refresh();
    // Were both reads under way, the newer (which sees the Subscription, and so forgets the
    // change) could finish first, and the older then replace what it found.
    await answer();
    await answer();
    await Promise.all([first, second]);
    await (await transaction(() => observe('o-5'))).commit();
    expect(queued).toEqual(['s-3 o-5']);
  });

  it("matches a transaction's writes together just before it commits: one search per Subscription", async () => {
    const { queued, searches, transaction, subscribe, observe } = setUp();
    await (await transaction(() => subscribe('s-4'))).commit();
    await (await transaction(() => subscribe('s-5'))).commit();
    const bundle = await transaction(async () => {
      for (const id of ['o-6', 'o-7', 'o-8']) await observe(id);
      await observe('o-6');
    });
    expect(queued).toEqual([]);
    await bundle.commit();
    expect(searches).toEqual([
      ['o-6', 'o-7', 'o-8'],
      ['o-6', 'o-7', 'o-8'],
    ]);
    expect(queued).toEqual(['s-4 o-6', 's-4 o-7', 's-4 o-8', 's-5 o-6', 's-5 o-7', 's-5 o-8']);
  });

  it('leaves nothing of a transaction that rolls back, re-read or not', async () => {
    const { registry, queued, answer, transaction, subscribe, observe } = setUp();
    await transaction(async () => {
      await subscribe('s-6');
      await observe('o-9');
    });
    await (await transaction(() => observe('o-10'))).commit();
    const refreshed = registry.refresh();
    await answer();
    await refreshed;
    await (await transaction(() => observe('o-11'))).commit();
    expect(queued).toEqual([]);
  });

  it("matches a transaction's writes against its own Subscription, seen by others only once it commits", async () => {
    const { registry, queued, answer, transaction, subscribe, observe } = setUp();
    const bundle = await transaction(async () => {
      await subscribe('s-7');
      // A re-read ends meanwhile: it could not see the uncommitted Subscription.
      const refreshed = registry.refresh();
      await answer();
      await refreshed;
      await observe('o-12');
    });
    await (await transaction(() => observe('o-13'))).commit();
    expect(queued).toEqual([]);
    await bundle.commit();
    expect(queued).toEqual(['s-7 o-12']);
    await (await transaction(() => observe('o-14'))).commit();
    expect(queued).toEqual(['s-7 o-12', 's-7 o-14']);
  });
});
