import { randomUUID } from 'node:crypto';
import type { DataSource } from 'typeorm';
import { tokenFor } from '../support/auth.js';
import { authorizedHttp, type HttpFn, createResource } from '../support/http.js';
import { queriesWhere as statementsWhere } from '../support/queries.js';
import {
  eventually,
  LOINC,
  loincObservation as observation,
  observationSubscription,
  startSubscriptionsApp,
  type Received,
  type SubscriptionsTestApp,
} from '../support/subscriptions.js';

/**
 * A receiver keeps a copy of what matched its criteria: a deletion of a record it was told of
 * must reach it too, or it keeps the deleted (entered-in-error) record until it polls.
 */
describe('Subscriptions: deletions', () => {
  let subscriptionsApp: SubscriptionsTestApp;
  let hooks: string;
  let received: Received[];
  let db: DataSource;
  let doctor: HttpFn;
  let fhir: string;
  const run = randomUUID().slice(0, 8);

  const subscription = (code: string, endpoint: string) =>
    observationSubscription(code, endpoint, `Authorization: Bearer del-${run}`);
  const create = (resource: Record<string, unknown>) => createResource(doctor, fhir, resource);
  /** The notifications queued for the Subscription, as `id/version`, in order. */
  const queued = async (subscriptionId: string): Promise<string[]> => {
    const rows = await db.query<{ resource_id: string; version_id: number }[]>(
      `SELECT resource_id, version_id FROM subscription_notification
        WHERE subscription_id = $1 ORDER BY seq`,
      [subscriptionId],
    );
    return rows.map((row) => `${row.resource_id}/${row.version_id}`);
  };
  const hits = (path: string): Received[] => received.filter((hit) => hit.path === path);

  beforeAll(async () => {
    subscriptionsApp = await startSubscriptionsApp();
    ({ fhir, db, hooks, received } = subscriptionsApp);
    doctor = authorizedHttp(await tokenFor(subscriptionsApp.testApp, 'doctor'));
  });

  afterAll(async () => {
    await subscriptionsApp.close();
  });

  it('notifies of the deletion of a resource that matched, and of no other', async () => {
    const code = `d-${run}-plain`;
    const id = await create(subscription(code, `${hooks}plain-${run}`));
    const matching = await create(observation(code));
    const other = await create(observation(`${code}-other`));
    await eventually('the first notification', () =>
      Promise.resolve(hits(`/hooks/plain-${run}`)[0]),
    );

    expect((await doctor('DELETE', `${fhir}/Observation/${other}`)).status).toBe(204);
    expect((await doctor('DELETE', `${fhir}/Observation/${matching}`)).status).toBe(204);
    // Deleting it again writes nothing, and tells nobody again.
    expect((await doctor('DELETE', `${fhir}/Observation/${matching}`)).status).toBe(204);
    expect(await queued(id)).toEqual([`${matching}/1`, `${matching}/2`]);
    await eventually('the deletion announced', () =>
      Promise.resolve(hits(`/hooks/plain-${run}`)[1]),
    );
  });

  it('notifies of Bundle DELETE entries, and of none in a transaction rolled back', async () => {
    const code = `d-${run}-bundle`;
    const id = await create(subscription(code, `${hooks}bundle-${run}`));
    const kept = await create(observation(code));
    const gone = await create(observation(code));
    const before = await queued(id);

    const failed = await doctor('POST', fhir, {
      body: {
        resourceType: 'Bundle',
        type: 'transaction',
        entry: [
          { request: { method: 'DELETE', url: `Observation/${kept}` } },
          {
            request: { method: 'PUT', url: `Observation/${randomUUID()}` },
            resource: { resourceType: 'Observation', status: 'no-such-status' },
          },
        ],
      },
    });
    expect(failed.status).toBeGreaterThanOrEqual(400);
    expect(await queued(id)).toEqual(before);

    const bundle = await doctor('POST', fhir, {
      body: {
        resourceType: 'Bundle',
        type: 'transaction',
        entry: [{ request: { method: 'DELETE', url: `Observation/${gone}` } }],
      },
    });
    expect(bundle.status).toBe(200);
    expect(await queued(id)).toEqual([...before, `${gone}/2`]);
  });

  it('notifies of the matching resources a cascading delete removes', async () => {
    const code = `d-${run}-cascade`;
    const id = await create(subscription(code, `${hooks}cascade-${run}`));
    const patient = await create({ resourceType: 'Patient', gender: 'female' });
    const result = await create(
      observation(code, { subject: { reference: `Patient/${patient}` } }),
    );
    const before = await queued(id);

    const res = await doctor('DELETE', `${fhir}/Patient/${patient}?_cascade=delete`);
    expect(res.status).toBe(200);
    expect(await queued(id)).toEqual([...before, `${result}/2`]);
  });

  it('notifies of a cascade-deleted referrer whose criteria chain through the target', async () => {
    const code = `d-${run}-chain`;
    const id = await create({
      ...subscription(code, `${hooks}chain-${run}`),
      criteria: `Observation?code=${LOINC}|${code}&patient.gender=female`,
    });
    const patient = await create({ resourceType: 'Patient', gender: 'female' });
    const result = await create(
      observation(code, { subject: { reference: `Patient/${patient}` } }),
    );
    const before = await queued(id);
    expect(before).toContain(`${result}/1`);

    const res = await doctor('DELETE', `${fhir}/Patient/${patient}?_cascade=delete`);
    expect(res.status).toBe(200);
    expect(await queued(id)).toEqual([...before, `${result}/2`]);
  });

  /**
   * Counts the criteria queries of these Subscriptions (their code among the parameters) that
   * `work` makes, at node-postgres's client (searches are prepared statements sent there): a
   * deletion's match is a search restricted to ids (`r.id = ANY(…)`).
   */
  const criteriaQueries = (codes: string[], work: () => Promise<void>): Promise<number> =>
    queriesWhere(
      (text, values) => text.includes('r.id = ANY(') && codes.some((code) => values.includes(code)),
      work,
    );
  /** Counts the statements `work` sends that `counted` selects, by their text and values. */
  const queriesWhere = async (
    counted: (text: string, values: string) => boolean,
    work: () => Promise<void>,
  ): Promise<number> => (await statementsWhere(db, counted, work)).length;

  it('matches a Bundle or cascade of deletions with one query per Subscription', async () => {
    const code = `d-${run}-many`;
    const subscriptions: string[] = [];
    for (const n of [1, 2, 3]) {
      subscriptions.push(await create(subscription(code, `${hooks}many-${n}-${run}`)));
    }
    const make = async (count: number, extra: Record<string, unknown> = {}) => {
      const ids: string[] = [];
      for (let n = 0; n < count; n++) ids.push(await create(observation(code, extra)));
      return ids;
    };
    const other = await create(observation(`${code}-other`));
    const bundled = await make(6);
    const before = await Promise.all(subscriptions.map(queued));

    let inserts = 0;
    const bundleQueries = await criteriaQueries([code], async () => {
      inserts = await queriesWhere(
        (text) => /INSERT INTO subscription_notification/.test(text),
        async () => {
          const res = await doctor('POST', fhir, {
            body: {
              resourceType: 'Bundle',
              type: 'transaction',
              entry: [...bundled, other].map((id) => ({
                request: { method: 'DELETE', url: `Observation/${id}` },
              })),
            },
          });
          expect(res.status).toBe(200);
        },
      );
    });
    // One per Subscription for the 7 deletions (it was 3 x 7 = 21).
    expect(bundleQueries).toBe(3);
    // The 18 notifications are queued in one statement (it was one each).
    expect(inserts).toBe(1);
    // Each hears of each matching deletion, in the order the Bundle ran them (by id).
    const deletedInOrder = bundled.map((gone) => `${gone}/2`).sort();
    for (const [n, id] of subscriptions.entries()) {
      expect(await queued(id)).toEqual([...before[n]!, ...deletedInOrder]);
    }

    const patient = await create({ resourceType: 'Patient', gender: 'male' });
    const cascaded = await make(6, { subject: { reference: `Patient/${patient}` } });
    const beforeCascade = await Promise.all(subscriptions.map(queued));
    const cascadeQueries = await criteriaQueries([code], async () => {
      const res = await doctor('DELETE', `${fhir}/Patient/${patient}?_cascade=delete`);
      expect(res.status).toBe(200);
    });
    expect(cascadeQueries).toBe(3);
    for (const [n, id] of subscriptions.entries()) {
      const notified = (await queued(id)).slice(beforeCascade[n]!.length);
      // A cascade deletes its referrers in the order it found them: the same for every one.
      expect(notified.sort()).toEqual(cascaded.map((gone) => `${gone}/2`).sort());
    }
  });

  it('matches a batch Bundle of deletions with one query per Subscription, as the batch left each', async () => {
    const code = `d-${run}-batch`;
    const subscriptions: string[] = [];
    for (const n of [1, 2, 3]) {
      subscriptions.push(await create(subscription(code, `${hooks}batch-${n}-${run}`)));
    }
    const deleted: string[] = [];
    for (let n = 0; n < 6; n++) deleted.push(await create(observation(code)));
    const other = await create(observation(`${code}-other`));
    // Matched ahead as it was, then changed by the batch before its deletion: matched anew.
    const changed = await create(observation(code));
    const before = await Promise.all(subscriptions.map(queued));

    const queries = await criteriaQueries([code], async () => {
      const res = await doctor('POST', fhir, {
        body: {
          resourceType: 'Bundle',
          type: 'batch',
          entry: [
            {
              request: { method: 'PUT', url: `Observation/${changed}` },
              resource: { ...observation(`${code}-changed`), id: changed },
            },
            ...[...deleted, other, changed].map((id) => ({
              request: { method: 'DELETE', url: `Observation/${id}` },
            })),
          ],
        },
      });
      expect(res.status).toBe(200);
      const statuses = (res.body.entry as { response: { status: string } }[]).map(
        (entry) => entry.response.status,
      );
      expect(statuses.slice(1).every((status) => status.startsWith('204'))).toBe(true);
    });
    // One per Subscription for the 8 deletions ahead, one for the PUT, and one for the changed
    // one at its deletion (it was 3 + 3 x 8 = 27: each deletion matched on its own).
    expect(queries).toBe(9);
    for (const [n, id] of subscriptions.entries()) {
      expect(await queued(id)).toEqual([...before[n]!, ...deleted.map((gone) => `${gone}/2`)]);
    }
  });
});
