import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DataSource } from 'typeorm';
import { tokenFor } from '../support/auth.js';
import { withEnv } from '../support/env.js';
import {
  authorizedHttp,
  http,
  type HttpFn,
  type HttpResult,
  createResource,
} from '../support/http.js';
import {
  eventually,
  loincObservation as observation,
  observationSubscription,
  startSubscriptionsApp,
  type Received,
  type SubscriptionsTestApp,
} from '../support/subscriptions.js';
import { settledBefore } from '../../src/subscriptions/subscription.repository.js';

/** An operator's many receivers: one slow or hanging endpoint must not hold up the others. */
describe('Subscription delivery, to many receivers', () => {
  let subscriptionsApp: SubscriptionsTestApp;
  let hooks: string;
  let received: Received[];
  let db: DataSource;
  let doctor: HttpFn;
  let fhir: string;
  /** Answers held back: the receiver hangs until the test ends. */
  const held: (() => void)[] = [];
  /** Whether the receiver at `down-…` paths is down (503). */
  let down = true;
  const run = randomUUID().slice(0, 8);
  const metricsToken = randomBytes(32).toString('hex');
  let metricsDir: string;
  let restoreEnv: () => void;
  /** The value of one series of GET /metrics. */
  const gauge = async (series: string): Promise<number> => {
    const res = await http('GET', `${subscriptionsApp.testApp.url}/metrics`, {
      headers: { authorization: `Bearer ${metricsToken}` },
    });
    expect(res.status).toBe(200);
    const line = res.text.split('\n').find((each) => each.startsWith(`${series} `));
    expect(line).toBeDefined();
    return Number(line!.slice(series.length + 1));
  };

  const create = (resource: Record<string, unknown>) => createResource(doctor, fhir, resource);
  const subscribe = (code: string, endpoint: string) =>
    create(observationSubscription(code, endpoint, `Authorization: Bearer d-${run}`));
  const hits = (path: string): Received[] => received.filter((hit) => hit.path === path);
  const active = (id: string) =>
    eventually('the Subscription active', async () => {
      const res = await doctor('GET', `${fhir}/Subscription/${id}`);
      return res.body.status === 'active' ? true : undefined;
    });
  /** Milliseconds from a matching write to its notification at `path`. */
  const latency = async (code: string, path: string): Promise<number> => {
    const start = Date.now();
    await create(observation(code));
    await eventually(`the notification at ${path}`, () =>
      Promise.resolve(hits(path).length > 0 ? true : undefined),
    );
    return Date.now() - start;
  };

  beforeAll(async () => {
    metricsDir = await mkdtemp(join(tmpdir(), 'carevault-subscription-metrics-'));
    await writeFile(join(metricsDir, 'token'), `${metricsToken}\n`, { mode: 0o600 });
    restoreEnv = withEnv({ METRICS_TOKEN_FILE: join(metricsDir, 'token') });
    subscriptionsApp = await startSubscriptionsApp((path) =>
      path.includes('hanging')
        ? new Promise((resolve) => held.push(() => resolve({ status: 204 })))
        : { status: (path.includes('down') && down) || path.includes('broken') ? 503 : 204 },
    );
    ({ fhir, db, hooks, received } = subscriptionsApp);
    doctor = authorizedHttp(await tokenFor(subscriptionsApp.testApp, 'doctor'));
  });

  afterAll(async () => {
    for (const release of held) release();
    await subscriptionsApp.close();
    restoreEnv();
    await rm(metricsDir, { recursive: true, force: true });
  });

  it('notifies other receivers while one endpoint hangs', async () => {
    const slow = await subscribe(`dl-${run}-slow`, `${hooks}hanging-${run}`);
    const fast = await subscribe(`dl-${run}-fast`, `${hooks}fast-${run}`);
    await active(slow);
    await active(fast);
    await create(observation(`dl-${run}-slow`));
    await eventually('the hanging endpoint called', () =>
      Promise.resolve(hits(`/hooks/hanging-${run}`).length > 0 ? true : undefined),
    );
    // Until 2026-12-07 the one notifier waited out the 10 s send timeout first.
    expect(await latency(`dl-${run}-fast`, `/hooks/fast-${run}`)).toBeLessThan(3_000);
    expect(held.length).toBe(1);
  });

  it('sends one request at a time to an endpoint many Subscriptions share, so that it cannot take every sender', async () => {
    const code = `dl-${run}-shared`;
    const path = `/hooks/hanging-shared-${run}`;
    const shared: string[] = [];
    for (let i = 0; i < 6; i++) shared.push(await subscribe(code, `${hooks}${path.slice(7)}`));
    const other = await subscribe(`dl-${run}-other`, `${hooks}other-${run}`);
    for (const id of [...shared, other]) await active(id);
    await create(observation(code));
    await eventually('the shared endpoint called', () =>
      Promise.resolve(hits(path).length > 0 ? true : undefined),
    );
    expect(await latency(`dl-${run}-other`, `/hooks/other-${run}`)).toBeLessThan(3_000);
    expect(hits(path)).toHaveLength(1);
    const [row] = await db.query<{ pending: number }[]>(
      `SELECT count(*)::int AS pending FROM subscription_notification
        WHERE subscription_id = ANY($1) AND status = 'pending'`,
      [shared],
    );
    expect(row!.pending).toBe(6);
  });

  it('tells a receiver that was down of what it missed, once its Subscription is started again', async () => {
    const code = `dl-${run}-down`;
    const path = `/hooks/down-${run}`;
    const id = await subscribe(code, `${hooks}down-${run}`);
    await active(id);
    await create(observation(code));
    const stopped = await eventually('the Subscription set to error', async () => {
      const res = await doctor('GET', `${fhir}/Subscription/${id}`);
      return res.body.status === 'error' ? res.body : undefined;
    });
    expect(hits(path)).toHaveLength(3);
    // The receiver is back; its owner starts the Subscription again, and nothing else changes.
    down = false;
    const again = await doctor('PUT', `${fhir}/Subscription/${id}`, {
      body: { ...stopped, status: 'requested' },
    });
    expect(again.status).toBe(200);
    // Until 2026-12-07 what was given up stayed so: the receiver heard nothing until the next
    // matching change, keeping a copy without the results that came while it was down.
    await eventually('the notification given up, sent', () =>
      Promise.resolve(hits(path).length === 4 ? true : undefined),
    );
    // The receiver has the POST before its settle commits.
    const rows = await eventually('the notification settled', async () => {
      const found = await db.query<{ status: string }[]>(
        `SELECT status FROM subscription_notification WHERE subscription_id = $1`,
        [id],
      );
      return found.every((row) => row.status !== 'pending') ? found : undefined;
    });
    expect(rows).toEqual([{ status: 'sent' }]);
  });

  it('tells an operator, on GET /metrics, of the notifications waiting and the Subscriptions stopped in error', async () => {
    // The hanging endpoints of the tests above hold their notifications pending until the end.
    const pending = 'carevault_subscription_notifications_pending';
    // The gauge says what the table holds. Read until they agree: this app also retries what
    // earlier files left pending in the worker's database, which may settle between two reads.
    await eventually('the gauge agreeing with the table', async () => {
      const count = await gauge(`${pending}{measure="count"}`);
      const [row] = await db.query<{ n: number }[]>(
        `SELECT count(*)::int AS n FROM subscription_notification WHERE status = 'pending'`,
      );
      return count >= 7 && count === row!.n ? true : undefined;
    });
    expect(await gauge(`${pending}{measure="oldest_seconds"}`)).toBeGreaterThan(0);

    const errors = await gauge('carevault_subscriptions{status="error"}');
    const id = await subscribe(`dl-${run}-broken`, `${hooks}broken-${run}`);
    await active(id);
    await create(observation(`dl-${run}-broken`));
    await eventually('the Subscription set to error', async () => {
      const res = await doctor('GET', `${fhir}/Subscription/${id}`);
      return res.body.status === 'error' ? true : undefined;
    });
    expect(await gauge('carevault_subscriptions{status="error"}')).toBe(errors + 1);
  });

  it('keeps the outbox bounded: what was delivered or cancelled a week ago is removed, what was given up kept', async () => {
    const sub = `outbox-${run}`;
    const insert = (status: string, age: string) =>
      db.query<{ seq: string }[]>(
        `INSERT INTO subscription_notification (subscription_id, resource_type, resource_id,
           version_id, created_at, status, next_attempt_at)
         VALUES ($1, 'Observation', $2, 1, now() - $3::interval, $4, now() - $3::interval)
         RETURNING seq`,
        [sub, randomUUID(), age, status],
      );
    for (const [status, age] of [
      ['sent', '8 days'],
      ['cancelled', '8 days'],
      ['dead', '8 days'],
      ['sent', '1 day'],
    ]) {
      await insert(status!, age!);
    }
    // The notifier removes them as it starts, then hourly: another instance starting.
    const second = await startSubscriptionsApp();
    try {
      const left = await eventually('the old notifications removed', async () => {
        const rows = await db.query<{ status: string }[]>(
          `SELECT status FROM subscription_notification WHERE subscription_id = $1 ORDER BY seq`,
          [sub],
        );
        return rows.length === 2 ? rows : undefined;
      });
      expect(left).toEqual([{ status: 'dead' }, { status: 'sent' }]);
    } finally {
      await second.close();
    }
  });

  it('finds what the purge deletes through an index, not a scan of the whole outbox', async () => {
    // Its last batch of a round, finding fewer than it may delete, read every row: a week of
    // deliveries. The outbox here is small enough to read whole, so the plan is asked of a
    // large one's terms.
    const indexesUsed = await db.transaction(async (manager) => {
      await manager.query('SET LOCAL enable_seqscan = off');
      const [row] = await manager.query<{ 'QUERY PLAN': unknown }[]>(
        `EXPLAIN (FORMAT JSON) SELECT seq FROM subscription_notification
          WHERE ${settledBefore('$1')} LIMIT 1000 FOR UPDATE SKIP LOCKED`,
        [new Date(Date.now() - 7 * 24 * 3600 * 1000)],
      );
      const plan: unknown = row!['QUERY PLAN'];
      const text = typeof plan === 'string' ? plan : JSON.stringify(plan);
      return [...text.matchAll(/"Index Name":\s*"([^"]+)"/g)].map((match) => match[1]!);
    });
    expect(indexesUsed).toEqual(['idx_subscription_notification_settled']);
  });

  it('lists for an administrator the Subscriptions in error and why, without their endpoint or criteria', async () => {
    const code = `dl-${run}-failing`;
    const id = await subscribe(code, `${hooks}broken-listed-${run}`);
    await active(id);
    await create(observation(code));
    await eventually('the Subscription set to error', async () => {
      const res = await doctor('GET', `${fhir}/Subscription/${id}`);
      return res.body.status === 'error' ? true : undefined;
    });
    const admin = authorizedHttp(await tokenFor(subscriptionsApp.testApp, 'admin'));
    const url = `${subscriptionsApp.testApp.url}/subscriptions`;
    const listed = async (): Promise<Record<string, unknown>[]> => {
      const rows: Record<string, unknown>[] = [];
      for (let next: string | undefined = `${url}?status=error&_count=1`; next;) {
        const res: HttpResult = await admin('GET', next);
        expect(res.status).toBe(200);
        rows.push(...(res.body as Record<string, unknown>[]));
        const link: string | undefined = /<([^>]+)>; rel="next"/.exec(
          res.headers.get('link') ?? '',
        )?.[1];
        next = link && `${subscriptionsApp.testApp.url}${link}`;
      }
      return rows;
    };
    const row = (await listed()).find((each) => each['id'] === id);
    expect(row).toEqual({
      id,
      status: 'error',
      reason: 'delivery-failed',
      owner: expect.any(String),
      updatedAt: expect.any(String),
      notifications: { pending: 0, dead: 1, lastError: 'HTTP 503' },
    });
    expect(JSON.stringify(row)).not.toContain(code);
    expect(JSON.stringify(row)).not.toContain('broken-listed');

    // Switched off by its owner: no longer listed as in error.
    const current = await doctor('GET', `${fhir}/Subscription/${id}`);
    const restarted = await doctor('PUT', `${fhir}/Subscription/${id}`, {
      body: { ...current.body, status: 'off' },
    });
    expect(restarted.status).toBe(200);
    expect((await listed()).map((each) => each['id'])).not.toContain(id);

    expect((await admin('GET', `${url}?status=broken`)).status).toBe(400);
    expect((await doctor('GET', `${url}?status=error`)).status).toBe(403);
  });
});
