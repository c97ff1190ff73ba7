import { randomUUID } from 'node:crypto';
import { jest } from '@jest/globals';
import type { DataSource } from 'typeorm';
import { ResourceEntity } from '../../src/fhir/resource.entity.js';
import { SubscriptionStatuses } from '../../src/subscriptions/subscription-statuses.js';
import { tokenFor } from '../support/auth.js';
import { withEnv } from '../support/env.js';
import { authorizedHttp, type HttpFn, createResource } from '../support/http.js';
import {
  eventually,
  loincObservation as observation,
  observationSubscription,
  startSubscriptionsApp,
  type Received,
  type SubscriptionsTestApp,
} from '../support/subscriptions.js';
import { createTestApp, type TestApp } from '../support/test-app.js';

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
  /** Paths of `held` answered at once with a 503 from now on. */
  const unheld = new Set<string>();
  const run = randomUUID().slice(0, 8);

  const subscription = (code: string, endpoint: string, change: Record<string, unknown> = {}) =>
    observationSubscription(code, endpoint, `Authorization: Bearer care-${run}`, change);
  const create = (as: HttpFn, resource: Record<string, unknown>) =>
    createResource(as, fhir, resource);
  const notifications = (subscriptionId: string) =>
    db.query<{ resource_id: string; status: string; attempts: number }[]>(
      `SELECT resource_id, status, attempts FROM subscription_notification
        WHERE subscription_id = $1 ORDER BY seq`,
      [subscriptionId],
    );
  /** The notifications once none is pending: a receiver has the POST before its settle commits. */
  const settled = (subscriptionId: string) =>
    eventually('every notification settled', async () => {
      const rows = await notifications(subscriptionId);
      return rows.every((row) => row.status !== 'pending') ? rows : undefined;
    });
  const hits = (path: string): Received[] => received.filter((hit) => hit.path === path);
  const statusOf = async (id: string, status: string) =>
    eventually(`the Subscription ${status}`, async () => {
      const res = await doctor('GET', `${fhir}/Subscription/${id}`);
      return res.body.status === status ? res.body : undefined;
    });

  beforeAll(async () => {
    subscriptionsApp = await startSubscriptionsApp((path) => {
      if (unheld.has(path)) return { status: 503 };
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

  it('queues nothing for a rolled-back transaction, and only the batch entries that were written', async () => {
    const code = `c-${run}-tx`;
    const id = await create(doctor, subscription(code, `${hooks}tx-${run}`));
    const failed = await doctor('POST', fhir, {
      body: {
        resourceType: 'Bundle',
        type: 'transaction',
        entry: [
          { request: { method: 'POST', url: 'Observation' }, resource: observation(code) },
          {
            request: { method: 'PUT', url: `Observation/${randomUUID()}` },
            resource: { resourceType: 'Observation', status: 'no-such-status' },
          },
        ],
      },
    });
    expect(failed.status).toBeGreaterThanOrEqual(400);
    expect(await notifications(id)).toEqual([]);

    const batch = await doctor('POST', fhir, {
      body: {
        resourceType: 'Bundle',
        type: 'batch',
        entry: [
          { request: { method: 'POST', url: 'Observation' }, resource: observation(code) },
          {
            request: { method: 'POST', url: 'Observation' },
            resource: { resourceType: 'Observation', status: 'no-such-status' },
          },
        ],
      },
    });
    expect(batch.status).toBe(200);
    const written = String(batch.body.entry[0].response.location).split('/')[1];
    expect((await notifications(id)).map((row) => row.resource_id)).toEqual([written]);
  });

  it('refuses endpoints that leave the allowed prefix, however they are spelled', async () => {
    const port = new URL(hooks).port;
    for (const endpoint of [
      `${hooks}%2e%2e/admin`,
      `${hooks}x/../../admin/`,
      // Names to the URL, yet `..` to Tomcat and Spring, or to a proxy that decodes `%2F`.
      `${hooks}..;/admin`,
      `${hooks}x/..%2F..%2Fadmin`,
      `http://localhost:${port}/hooks/x`,
      `http://127.0.0.1:${port}@169.254.169.254/hooks/x`,
      `http://[::ffff:127.0.0.1]:${port}/hooks/x`,
      `http://127.0.0.1:${port}/hooksx/`,
      `file:///etc/passwd`,
    ]) {
      const res = await doctor('POST', `${fhir}/Subscription`, {
        body: subscription(`c-${run}-ssrf`, endpoint),
      });
      expect({ endpoint, status: res.status }).toEqual({ endpoint, status: 422 });
    }
  });

  it('gives a patient-scoped token no Subscription to write, read or list', async () => {
    const patient = await create(doctor, { resourceType: 'Patient', gender: 'female' });
    const scoped = await doctor('POST', `${testApp.url}/auth/token/scoped`, {
      body: { scope: 'patient/*.cruds', patient },
      headers: { 'content-type': 'application/json' },
    });
    expect(scoped.status).toBe(200);
    const app = authorizedHttp(scoped.body.access_token as string);
    const id = await create(doctor, subscription(`c-${run}-scoped`, `${hooks}scoped-${run}`));
    const written = await app('POST', `${fhir}/Subscription`, {
      body: subscription(`c-${run}-scoped`, `${hooks}scoped-${run}`, {
        criteria: `Observation?subject=Patient/${patient}`,
      }),
    });
    expect(written.status).toBe(403);
    expect((await app('GET', `${fhir}/Subscription/${id}`)).status).toBe(404);
    const listed = await app('GET', `${fhir}/Subscription?_count=1000`);
    expect(listed.body.entry ?? []).toEqual([]);
  });

  it('keeps channel.header values out of the audit trail and the plaintext tables', async () => {
    const secret = `care-secret-${run}`;
    const id = await create(
      doctor,
      subscription(`c-${run}-audit`, `${hooks}audit-${run}`, {
        channel: {
          type: 'rest-hook',
          endpoint: `${hooks}audit-${run}`,
          header: [`Authorization: Bearer ${secret}`],
        },
      }),
    );
    const read = await doctor('GET', `${fhir}/Subscription/${id}`);
    await doctor('PUT', `${fhir}/Subscription/${id}`, {
      body: { ...read.body, reason: 'Changed' },
    });
    await doctor('GET', `${fhir}/Subscription/${id}/_history`);
    await create(doctor, observation(`c-${run}-audit`));
    await eventually('the notification', () => Promise.resolve(hits(`/hooks/audit-${run}`)[0]));
    for (const table of ['audit_event', 'fhir_subscription', 'subscription_notification']) {
      const [row] = await db.query<{ count: string }[]>(
        `SELECT count(*) FROM ${table} t WHERE t::text LIKE $1`,
        [`%${secret}%`],
      );
      expect({ table, count: row!.count }).toEqual({ table, count: '0' });
    }
  });

  it('sends nothing more once the Subscription is deleted', async () => {
    const code = `c-${run}-deleted`;
    const path = `/hooks/deleted-${run}`;
    const id = await create(doctor, subscription(code, `${hooks}deleted-${run}`));
    await create(doctor, observation(code));
    await eventually('the notification', () => Promise.resolve(hits(path)[0]));
    await settled(id);
    const before = hits(path).length;
    expect((await doctor('DELETE', `${fhir}/Subscription/${id}`)).status).toBe(204);
    await create(doctor, observation(code));
    await settled(id);
    expect(hits(path).length).toBe(before);
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
    // The owner's version stands, and is served: made active, what was queued sent to it.
    await statusOf(id, 'active');
    await eventually('the queued notification at the new endpoint', () =>
      Promise.resolve(hits(`/hooks/fixed-${run}`)[0]),
    );
    expect(await settled(id)).toEqual([expect.objectContaining({ status: 'sent', attempts: 1 })]);
  });

  it('makes a failing notification as many attempts as it records when the server activates its Subscription mid-attempt', async () => {
    const code = `c-${run}-activated`;
    const heldPath = `/hooks/held-activated-${run}`;
    // The server's own rounds (activation among them) wait at a gate, from a round's start.
    const statuses = testApp.app.get(SubscriptionStatuses);
    const setDue = statuses.setDue.bind(statuses);
    let parked = false;
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    const spy = jest.spyOn(statuses, 'setDue').mockImplementation(async () => {
      parked = true;
      await gate;
      return setDue();
    });
    try {
      await eventually('the server parked at the gate', () =>
        Promise.resolve(parked ? true : undefined),
      );
      const id = await create(doctor, subscription(code, `${hooks}held-activated-${run}`));
      await create(doctor, observation(code));
      // Two attempts fail; during the third, the last, the server makes the Subscription active.
      for (let attempt = 1; attempt <= 3; attempt++) {
        await eventually(`attempt ${attempt}`, () =>
          Promise.resolve(
            hits(heldPath).length === attempt && held.has(heldPath) ? true : undefined,
          ),
        );
        const release = held.get(heldPath)!;
        if (attempt === 3) {
          expect((await doctor('GET', `${fhir}/Subscription/${id}`)).body.status).toBe('requested');
          open();
          await statusOf(id, 'active');
          unheld.add(heldPath);
        }
        held.delete(heldPath);
        release(503);
      }
      // Given up after the three attempts it counts: no fourth POST, its active version set to
      // error. Until 2026-12-07 the attempts started again: six POSTs, the row saying three.
      const stopped = await statusOf(id, 'error');
      expect(stopped.error).toMatch(/^Notifications failed 3 times \(last: HTTP 503\)/);
      expect(hits(heldPath)).toHaveLength(3);
      expect(await settled(id)).toEqual([expect.objectContaining({ status: 'dead', attempts: 3 })]);
    } finally {
      open();
      spy.mockRestore();
    }
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

  it('notifies of the records a merge (A40) moves into the surviving patient', async () => {
    const integration = await tokenFor(testApp, 'integration');
    const post = async (segments: string[]): Promise<string> => {
      const res = await fetch(`${testApp.url}/hl7/v2`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${integration}`,
          'content-type': 'x-application/hl7-v2+er7',
        },
        body: segments.join('\r'),
      });
      return res.text();
    };
    const mrn = (who: string) => `${who}-${run}^^^NORTH&2.16.840.1.8&ISO^MR`;
    expect(
      await post([
        `MSH|^~\\&|LAB|NORTH|CV|HOSP|20261206080000+0000||ORU^R01|MV1-${run}|P|2.5.1`,
        `PID|1||${mrn('PRIOR')}||Prior^Pat`,
        `OBR|1||MV-${run}^NORTH^2.16.840.1.8^ISO|2823-3^Potassium^LN|||202612060800+0000||||||||||||||||F`,
        'OBX|1|NM|2823-3^Potassium^LN||5.9|mmol/L^^UCUM|||||F',
      ]),
    ).toContain('MSA|AA|');
    expect(
      await post([
        `MSH|^~\\&|ADT|NORTH|CV|HOSP|20261206081000+0000||ADT^A28^ADT_A05|MV2-${run}|P|2.5.1`,
        'EVN|A28|20261206081000+0000',
        `PID|1||${mrn('SURV')}||Survivor^Pat`,
      ]),
    ).toContain('MSA|AA|');
    const found = await doctor('GET', `${fhir}/Patient?identifier=SURV-${run}`);
    expect(found.body.entry).toHaveLength(1);
    const survivor = found.body.entry[0].resource.id as string;
    const id = await create(
      doctor,
      subscription(`c-${run}-merge`, `${hooks}merge-${run}`, {
        criteria: `Observation?subject=Patient/${survivor}`,
      }),
    );
    expect(
      await post([
        `MSH|^~\\&|ADT|NORTH|CV|HOSP|20261206090000+0000||ADT^A40^ADT_A39|MV3-${run}|P|2.5.1`,
        'EVN|A40|20261206090000+0000',
        `PID|1||${mrn('SURV')}||Survivor^Pat`,
        `MRG|${mrn('PRIOR')}`,
      ]),
    ).toContain('MSA|AA|');
    const moved = await doctor('GET', `${fhir}/Observation?subject=Patient/${survivor}`);
    expect(moved.body.entry).toHaveLength(1);
    expect((await notifications(id)).map((row) => row.resource_id)).toEqual([
      moved.body.entry[0].resource.id,
    ]);
    await eventually('the notification', () => Promise.resolve(hits(`/hooks/merge-${run}`)[0]));
  });

  it('keeps a Subscription its owner wrote again when another instance still matches its old, refused criteria', async () => {
    const code = `c-${run}-stale`;
    const id = await create(doctor, subscription(code, `${hooks}stale-${run}`));
    const active = await statusOf(id, 'active');
    // As after an upgrade that dropped a search parameter: the stored criteria are refused now.
    await db.query(
      `UPDATE fhir_subscription SET criteria = criteria || '&no-such-parameter=1' WHERE id = $1`,
      [id],
    );
    // Another instance, which reads them so and, delivering nothing, never reads them again.
    const restoreEnv = withEnv({ SUBSCRIPTION_ENDPOINTS: undefined });
    let other: TestApp;
    try {
      other = await createTestApp();
    } finally {
      restoreEnv();
    }
    try {
      // Its owner writes it again here, which stores its criteria afresh.
      const fixed = await doctor('PUT', `${fhir}/Subscription/${id}`, {
        body: { ...active, reason: 'Written again' },
      });
      expect(fixed.status).toBe(200);
      // A write there matches the old criteria, refused: they are stopped, not the new version.
      const elsewhere = authorizedHttp(await tokenFor(other, 'doctor'));
      const written = await elsewhere('POST', `${other.url}/fhir/Observation`, {
        body: observation(code),
      });
      expect(written.status).toBe(201);
      const [state] = await db.query<{ active: boolean; failure: string | null }[]>(
        `SELECT active, failure FROM fhir_subscription WHERE id = $1`,
        [id],
      );
      expect(state).toEqual({ active: true, failure: null });
    } finally {
      await other.close();
    }
  });

  it('sets to error, saying why, one whose endpoint this server no longer notifies', async () => {
    const code = `c-${run}-dropped`;
    const id = await create(doctor, subscription(code, `${hooks}dropped-${run}`));
    await statusOf(id, 'active');
    // As stored while SUBSCRIPTION_ENDPOINTS allowed its endpoint, since dropped from it.
    const row = await db.manager.findOneByOrFail(ResourceEntity, {
      resourceType: 'Subscription',
      id,
    });
    const stored = JSON.parse(row.content!) as { channel: Record<string, unknown> };
    stored.channel['endpoint'] = `http://127.0.0.1:9/retired-${run}`;
    await db.manager.save(ResourceEntity, { ...row, content: JSON.stringify(stored) });

    await create(doctor, observation(code));
    const refused = await statusOf(id, 'error');
    expect(refused.error).toBe(
      'Not sent: channel.endpoint is not among the endpoints this server may notify (SUBSCRIPTION_ENDPOINTS); correct it and set status to requested to start again',
    );
    expect(await notifications(id)).toEqual([expect.objectContaining({ status: 'cancelled' })]);
    const [audit] = await db.query<{ detail: string }[]>(
      `SELECT detail FROM audit_event WHERE subtype = 'subscription-notification'
          AND resource_id = $1 AND resource_version = $2`,
      [id, refused.meta.versionId],
    );
    expect(audit).toEqual({ detail: 'error refused' });
    // Stopped: nothing more is queued for it.
    await create(doctor, observation(code));
    expect(await notifications(id)).toHaveLength(1);
  });

  it('tries what is queued afresh once its owner changes it, rather than after the backoff', async () => {
    const code = `c-${run}-backoff`;
    const id = await create(doctor, subscription(code, `${hooks}failing-backoff-${run}`));
    const written = await statusOf(id, 'active');
    const observed = await create(doctor, observation(`c-${run}-unwatched`));
    // As after failed attempts against the old endpoint: the next one an hour away.
    await db.query(
      `INSERT INTO subscription_notification (subscription_id, resource_type, resource_id,
         version_id, created_at, status, attempts, last_error, next_attempt_at)
       VALUES ($1, 'Observation', $2, 1, now(), 'pending', 7, 'HTTP 503', now() + interval '1 hour')`,
      [id, observed],
    );
    const fixed = await doctor('PUT', `${fhir}/Subscription/${id}`, {
      body: subscription(code, `${hooks}mended-${run}`, { id, status: written.status }),
    });
    expect(fixed.status).toBe(200);
    await eventually('the notification at the new endpoint', () =>
      Promise.resolve(hits(`/hooks/mended-${run}`)[0]),
    );
    expect(await settled(id)).toEqual([expect.objectContaining({ status: 'sent', attempts: 1 })]);
  });
});
