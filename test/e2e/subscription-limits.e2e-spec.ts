import { randomUUID } from 'node:crypto';
import { ImportService } from '../../src/fhir/import/import.service.js';
import { MAX_ACTIVE_PER_OWNER } from '../../src/subscriptions/subscription-registry.js';
import { tokenFor } from '../support/auth.js';
import { authorizedHttp, type HttpFn } from '../support/http.js';
import {
  observationSubscription,
  startSubscriptionsApp,
  type SubscriptionsTestApp,
} from '../support/subscriptions.js';

const LIMIT = MAX_ACTIVE_PER_OWNER;

/**
 * Every write of a type is matched against each active Subscription of that type, one query
 * each, in the write's transaction: 2,000 Subscriptions, which one doctor wrote in 4.5 s, made
 * every Observation write (an HL7 result's too) take a second instead of 10 ms. An account may
 * own so many active Subscriptions and no more.
 */
describe('Subscriptions: the active ones an account may own', () => {
  let app: SubscriptionsTestApp;
  let doctor: HttpFn;
  const run = randomUUID().slice(0, 8);
  const subscription = (n: number | string, change: Record<string, unknown> = {}) =>
    observationSubscription(`limit-${run}-${n}`, `${app.hooks}limit`, 'X-Key: k', change);
  const transaction = (resources: Record<string, unknown>[]) => ({
    resourceType: 'Bundle',
    type: 'transaction',
    entry: resources.map((resource) => ({
      request: { method: 'POST', url: 'Subscription' },
      resource,
    })),
  });
  const owned = async (): Promise<number> => {
    const [row] = await app.db.query<{ count: number }[]>(
      `SELECT count(*)::int AS count FROM fhir_subscription WHERE criteria LIKE $1`,
      [`%limit-${run}-%`],
    );
    return row!.count;
  };

  beforeAll(async () => {
    app = await startSubscriptionsApp();
    doctor = authorizedHttp(await tokenFor(app.testApp, 'doctor'));
  });

  afterAll(async () => {
    await app.close();
  });

  it('refuses a transaction that would take an account past the limit, storing none of it', async () => {
    const res = await doctor('POST', app.fhir, {
      body: transaction(Array.from({ length: LIMIT + 1 }, (_, n) => subscription(`t${n}`))),
    });
    expect({ status: res.status, code: res.body.issue?.[0]?.code }).toEqual({
      status: 422,
      code: 'too-costly',
    });
    expect(await owned()).toBe(0);
  });

  it('takes up to the limit, then refuses another active one, but not one switched off', async () => {
    const filled = await doctor('POST', app.fhir, {
      body: transaction(Array.from({ length: LIMIT }, (_, n) => subscription(n))),
    });
    expect(filled.status).toBe(200);

    const beyond = await doctor('POST', `${app.fhir}/Subscription`, { body: subscription('x') });
    expect({ status: beyond.status, code: beyond.body.issue?.[0]?.code }).toEqual({
      status: 422,
      code: 'too-costly',
    });
    expect(beyond.body.issue[0].diagnostics).toContain(`${LIMIT} active Subscriptions`);

    const off = await doctor('POST', `${app.fhir}/Subscription`, {
      body: subscription('off', { status: 'off' }),
    });
    expect(off.status).toBe(201);
    // Another account's are its own.
    const other = authorizedHttp(await tokenFor(app.testApp, 'doctor'));
    expect(
      (await other('POST', `${app.fhir}/Subscription`, { body: subscription('o') })).status,
    ).toBe(201);

    // One of the account's switched off makes room; turned on again, the one switched off is over.
    const first = (filled.body.entry[0].response.location as string).split('/')[1]!;
    const read = await doctor('GET', `${app.fhir}/Subscription/${first}`);
    const stopped = await doctor('PUT', `${app.fhir}/Subscription/${first}`, {
      body: { ...read.body, status: 'off' },
    });
    expect(stopped.status).toBe(200);
    const offId = off.body.id as string;
    const again = await doctor('GET', `${app.fhir}/Subscription/${offId}`);
    expect(
      (
        await doctor('PUT', `${app.fhir}/Subscription/${offId}`, {
          body: { ...again.body, status: 'requested' },
        })
      ).status,
    ).toBe(200);
    const reread = await doctor('GET', `${app.fhir}/Subscription/${first}`);
    const restarted = await doctor('PUT', `${app.fhir}/Subscription/${first}`, {
      body: { ...reread.body, status: 'requested' },
    });
    expect(restarted.status).toBe(422);
    // An active one written again (its reason changed) is not counted twice.
    const second = (filled.body.entry[1].response.location as string).split('/')[1]!;
    const current = await doctor('GET', `${app.fhir}/Subscription/${second}`);
    const rewritten = await doctor('PUT', `${app.fhir}/Subscription/${second}`, {
      body: { ...current.body, reason: 'Renamed' },
    });
    expect(rewritten.status).toBe(200);
  });

  it("does not hold the CLI's import to it: an operator loads a server's Subscriptions", async () => {
    const bundle = transaction(
      Array.from({ length: LIMIT + 1 }, (_, n) => subscription(`i${n}`)),
    ) as unknown as Parameters<ImportService['load']>[0]['bundle'];
    const result = await app.testApp.app.get(ImportService).load({
      source: { path: 'subscriptions.json', kind: 'bundle', resources: LIMIT + 1 },
      bundle,
      where: (index) => `entry ${index}`,
    } as Parameters<ImportService['load']>[0]);
    expect({ written: result.written, rejected: result.rejected }).toEqual({
      written: LIMIT + 1,
      rejected: [],
    });
  });
});
