import { randomUUID } from 'node:crypto';
import type { DataSource } from 'typeorm';
import { tokenFor } from '../support/auth.js';
import { authorizedHttp, type HttpFn } from '../support/http.js';
import {
  eventually,
  startSubscriptionsApp,
  type Received,
  type SubscriptionsTestApp,
} from '../support/subscriptions.js';
import type { TestApp } from '../support/test-app.js';

const LOINC = 'http://loinc.org';
const CONFIDENTIALITY = 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality';

/** What a downstream system that consumes the Subscriptions relies on. */
describe('Subscriptions, as a receiver relies on them', () => {
  let subscriptionsApp: SubscriptionsTestApp;
  let hooks: string;
  let received: Received[];
  let testApp: TestApp;
  let db: DataSource;
  let doctor: HttpFn;
  let fhir: string;
  /** Answers held back by path: the test settles them. */
  const held = new Map<string, (status: number) => void>();
  const run = randomUUID().slice(0, 8);

  const subscription = (code: string, endpoint: string, change: Record<string, unknown> = {}) => ({
    resourceType: 'Subscription',
    status: 'requested',
    reason: 'Care-management worklist',
    criteria: `Observation?code=${LOINC}|${code}`,
    channel: { type: 'rest-hook', endpoint, header: [`Authorization: Bearer care-${run}`] },
    ...change,
  });
  const observation = (code: string, extra: Record<string, unknown> = {}) => ({
    resourceType: 'Observation',
    status: 'final',
    code: { coding: [{ system: LOINC, code }] },
    valueQuantity: { value: 5.4, unit: 'mmol/L' },
    ...extra,
  });
  const create = async (as: HttpFn, resource: Record<string, unknown>): Promise<string> => {
    const res = await as('POST', `${fhir}/${String(resource['resourceType'])}`, { body: resource });
    expect({ status: res.status, body: res.status === 201 ? undefined : res.body }).toEqual({
      status: 201,
      body: undefined,
    });
    return res.body.id as string;
  };
  const notifications = (subscriptionId: string) =>
    db.query<{ resource_id: string; status: string; attempts: number }[]>(
      `SELECT resource_id, status, attempts FROM subscription_notification
        WHERE subscription_id = $1 ORDER BY seq`,
      [subscriptionId],
    );
  const hits = (path: string): Received[] => received.filter((hit) => hit.path === path);
  const statusOf = async (id: string, status: string) =>
    eventually(`the Subscription ${status}`, async () => {
      const res = await doctor('GET', `${fhir}/Subscription/${id}`);
      return res.body.status === status ? res.body : undefined;
    });

  beforeAll(async () => {
    subscriptionsApp = await startSubscriptionsApp((path) => {
      if (path.includes('held')) {
        return new Promise((resolve) => held.set(path, (status) => resolve({ status })));
      }
      return { status: path.includes('failing') ? 503 : 204 };
    });
    ({ testApp, fhir, db, hooks, received } = subscriptionsApp);
    doctor = authorizedHttp(await tokenFor(testApp, 'doctor'));
  });

  afterAll(async () => {
    for (const release of held.values()) release(503);
    await subscriptionsApp.close();
  });

  it('keeps a Subscription its owner fixed while its last failing delivery was in flight', async () => {
    const code = `c-${run}-fixed`;
    const heldPath = `/hooks/held-${run}`;
    const id = await create(doctor, subscription(code, `${hooks}held-${run}`));
    await statusOf(id, 'active');
    await create(doctor, observation(code));
    // Two attempts fail; the third, the last, is held while its owner points it elsewhere.
    for (let attempt = 1; attempt <= 3; attempt++) {
      await eventually(`attempt ${attempt}`, () =>
        Promise.resolve(hits(heldPath).length === attempt && held.has(heldPath) ? true : undefined),
      );
      const release = held.get(heldPath)!;
      if (attempt === 3) {
        const fixed = await doctor('PUT', `${fhir}/Subscription/${id}`, {
          body: subscription(code, `${hooks}fixed-${run}`, {
            id,
            status: 'requested',
          }),
        });
        expect(fixed.status).toBe(200);
      }
      held.delete(heldPath);
      release(503);
    }
    await eventually('the notification given up', async () => {
      const rows = await notifications(id);
      return rows[0]?.status === 'dead' ? true : undefined;
    });
    // The owner's version stands, and is served: made active, notified of what comes next.
    await statusOf(id, 'active');
    await create(doctor, observation(code));
    await eventually('a notification at the new endpoint', () =>
      Promise.resolve(hits(`/hooks/fixed-${run}`)[0]),
    );
  });

  it('does not notify of a Binary whose securityContext is restricted, as a search would not list it', async () => {
    const patient = await create(doctor, { resourceType: 'Patient', gender: 'male' });
    const letter = (restricted: boolean) =>
      create(doctor, {
        resourceType: 'DocumentReference',
        status: 'current',
        subject: { reference: `Patient/${patient}` },
        content: [{ attachment: { contentType: 'application/pdf', title: 'Letter' } }],
        ...(restricted ? { meta: { security: [{ system: CONFIDENTIALITY, code: 'R' }] } } : {}),
      });
    const binary = async (context: string): Promise<string> => {
      const res = await doctor('POST', `${fhir}/Binary`, {
        body: {
          resourceType: 'Binary',
          contentType: 'text/plain',
          securityContext: { reference: context },
          data: Buffer.from(`letter ${run}`).toString('base64'),
        },
      });
      expect(res.status).toBe(201);
      return res.body.id as string;
    };
    const id = await create(
      doctor,
      subscription(`c-${run}-binary`, `${hooks}binary-${run}`, { criteria: 'Binary' }),
    );
    const sealed = await binary(`DocumentReference/${await letter(true)}`);
    const open = await binary(`DocumentReference/${await letter(false)}`);
    // What the owner may list of them: the open one.
    const listed = await doctor('GET', `${fhir}/Binary?_id=${sealed},${open}`);
    expect(
      listed.body.entry.map((entry: { resource: { id: string } }) => entry.resource.id),
    ).toEqual([open]);
    expect((await notifications(id)).map((row) => row.resource_id)).toEqual([open]);
  });
});
