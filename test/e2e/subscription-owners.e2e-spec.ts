import { randomUUID } from 'node:crypto';
import type { DataSource } from 'typeorm';
import { SmartAppsService } from '../../src/auth/apps/smart-apps.service.js';
import { BackendClientsService } from '../../src/auth/backend-clients/backend-clients.service.js';
import { TokenService } from '../../src/auth/token.service.js';
import { UserRepository } from '../../src/auth/user.repository.js';
import { UsersService } from '../../src/auth/users.service.js';
import type { Role } from '../../src/auth/roles.js';
import { createUser, login, type TestUser } from '../support/auth.js';
import { authorizedHttp, type HttpFn } from '../support/http.js';
import {
  eventually,
  LOINC,
  observationSubscription,
  startSubscriptionsApp,
  type Received,
  type SubscriptionsTestApp,
} from '../support/subscriptions.js';
import type { TestApp } from '../support/test-app.js';

/**
 * A Subscription's owner is whoever last wrote it: an account, through the app or backend
 * client whose token it used. When that account, app or client is disabled, its notifications
 * stop at once and the Subscription is set to `error`, saying why, until someone sets it back.
 */
describe('Subscriptions of a disabled account, SMART app or backend client', () => {
  let subscriptionsApp: SubscriptionsTestApp;
  let hooks: string;
  let received: Received[];
  let testApp: TestApp;
  let db: DataSource;
  let fhir: string;
  let writer: HttpFn;
  const run = randomUUID().slice(0, 8);

  const hits = (path: string): number => received.filter((hit) => hit.path === path).length;
  const subscription = (code: string, path: string) =>
    observationSubscription(code, `${hooks}${path}`, 'X-Key: k');
  const observe = async (code: string): Promise<void> => {
    const res = await writer('POST', `${fhir}/Observation`, {
      body: {
        resourceType: 'Observation',
        status: 'final',
        code: { coding: [{ system: LOINC, code }] },
      },
    });
    expect(res.status).toBe(201);
  };
  const statusOf = async (as: HttpFn, id: string) =>
    (await as('GET', `${fhir}/Subscription/${id}`)).body as Record<string, unknown>;
  /** Writes the Subscription as `as`, waits until it is active and has delivered once. */
  const started = async (as: HttpFn, code: string, path: string): Promise<string> => {
    const res = await as('POST', `${fhir}/Subscription`, { body: subscription(code, path) });
    expect({ status: res.status, issue: res.body.issue }).toEqual({
      status: 201,
      issue: undefined,
    });
    const id = res.body.id as string;
    await eventually('the Subscription made active', async () =>
      (await statusOf(writer, id))['status'] === 'active' ? true : undefined,
    );
    await observe(code);
    await eventually('the first notification', () =>
      Promise.resolve(hits(`/hooks/${path}`) > 0 ? true : undefined),
    );
    return id;
  };
  /** Waits for the Subscription set to `error`; returns it. */
  const stopped = (id: string) =>
    eventually('the Subscription set to error', async () => {
      const stored = await statusOf(writer, id);
      return stored['status'] === 'error' ? stored : undefined;
    });
  const settled = (id: string) =>
    eventually('its notifications settled', async () => {
      const rows = await db.query<{ status: string }[]>(
        `SELECT status FROM subscription_notification WHERE subscription_id = $1 ORDER BY seq`,
        [id],
      );
      return rows.every((row) => row.status !== 'pending')
        ? rows.map((row) => row.status)
        : undefined;
    });
  const auditRows = (id: string) =>
    db.query<{ action: string; outcome: string; detail: string; resource_version: string }[]>(
      `SELECT action, outcome, detail, resource_version FROM audit_event
        WHERE subtype = 'subscription-notification' AND resource_id = $1 AND action = 'update'
        ORDER BY recorded_at`,
      [id],
    );
  /** An access token of `user` as issued to the client `clientId` with `scope`. */
  const clientToken = async (user: TestUser, clientId: string, scope: string): Promise<HttpFn> => {
    const entity = await testApp.app.get(UserRepository).findById(user.id);
    const { token } = await testApp.app
      .get(TokenService)
      .accessToken(entity!, { amr: ['pwd'], authTime: new Date() }, { scope, clientId });
    return authorizedHttp(token);
  };
  const userWith = async (...roles: Role[]): Promise<{ user: TestUser; as: HttpFn }> => {
    const user = await createUser(testApp, roles);
    return { user, as: authorizedHttp((await login(testApp, user)).access_token) };
  };

  beforeAll(async () => {
    subscriptionsApp = await startSubscriptionsApp();
    ({ testApp, fhir, db, hooks, received } = subscriptionsApp);
    writer = (await userWith('doctor')).as;
  });

  afterAll(() => subscriptionsApp.close());

  it('stops those written with a SMART app’s tokens when the app is disabled, and keeps them stopped', async () => {
    const code = `o-${run}-app`;
    const path = `app-${run}`;
    const { user, as: own } = await userWith('doctor');
    const name = `sub-app-${run}`;
    const app = await testApp.app
      .get(SmartAppsService)
      .register(name, ['https://app.example/callback'], 'user/*.cruds');
    const id = await started(await clientToken(user, app.id, 'user/*.cruds'), code, path);

    await testApp.app.get(SmartAppsService).disable(name);
    const before = hits(`/hooks/${path}`);
    await observe(code);
    const stored = await stopped(id);
    expect(stored['error']).toBe(
      'The SMART app it was written with was disabled; set status to requested to start it again (whoever does becomes its owner)',
    );
    await observe(code);
    await settled(id);
    expect(hits(`/hooks/${path}`)).toBe(before);
    // Audited as the system's change of the Subscription, naming the app, not the endpoint
    // (after its activation, audited too).
    const [activation, audit, ...more] = await auditRows(id);
    expect(activation?.detail).toBe('active accepted');
    expect(more).toEqual([]);
    expect(audit).toEqual({
      action: 'update',
      outcome: 'success',
      detail: `error owner=app-disabled client=${app.id}`,
      resource_version: String((stored['meta'] as { versionId: string }).versionId),
    });
    // An administrator's list says why, in the same words.
    const admin = (await userWith('admin')).as;
    const listed = async (status: string) =>
      (
        (await admin('GET', `${testApp.url}/subscriptions?status=${status}&_count=1000`)).body as {
          id: string;
          reason?: string;
        }[]
      ).find((each) => each.id === id);
    expect((await listed('error'))?.reason).toBe(`owner=app-disabled client=${app.id}`);

    // Enabled again, the app does not bring it back: its writer sets it back to requested.
    await db.query(`UPDATE smart_app SET active = true WHERE id = $1`, [app.id]);
    await observe(code);
    await settled(id);
    expect(hits(`/hooks/${path}`)).toBe(before);
    expect((await statusOf(own, id))['status']).toBe('error');
    const again = await own('PUT', `${fhir}/Subscription/${id}`, {
      body: { ...stored, status: 'requested' },
    });
    expect(again.status).toBe(200);
    await eventually('the Subscription made active again', async () =>
      (await statusOf(own, id))['status'] === 'active' ? true : undefined,
    );
    // Started again by its owner, it has no reason of the server's.
    expect(await listed('active')).toEqual(expect.objectContaining({ id }));
    expect((await listed('active'))?.reason).toBeUndefined();
    await observe(code);
    await eventually('a notification again', () =>
      Promise.resolve(hits(`/hooks/${path}`) > before ? true : undefined),
    );
  });

  it('sends nothing queued before the disable was noticed', async () => {
    const code = `o-${run}-queued`;
    const path = `queued-${run}`;
    const { user } = await userWith('doctor');
    const name = `sub-queued-${run}`;
    const app = await testApp.app
      .get(SmartAppsService)
      .register(name, ['https://app.example/callback'], 'user/*.cruds');
    const id = await started(await clientToken(user, app.id, 'user/*.cruds'), code, path);
    const before = hits(`/hooks/${path}`);
    // As an instance whose Subscriptions were read before the disable queues one.
    await db.transaction(async (manager) => {
      await manager.query(`UPDATE smart_app SET active = false WHERE id = $1`, [app.id]);
      await manager.query(
        `INSERT INTO subscription_notification
           (subscription_id, resource_type, resource_id, version_id, created_at, status, next_attempt_at)
         VALUES ($1, 'Observation', $2, 1, now(), 'pending', now())`,
        [id, randomUUID()],
      );
    });
    expect(await settled(id)).toContain('cancelled');
    expect(hits(`/hooks/${path}`)).toBe(before);
    await stopped(id);
  });

  it('stops those of a backend client when the client is disabled', async () => {
    const code = `o-${run}-client`;
    const path = `client-${run}`;
    const { user } = await userWith('integration');
    const name = `sub-client-${run}`;
    const client = await testApp.app
      .get(BackendClientsService)
      .register(
        name,
        user.username,
        { jwksUrl: 'https://client.example/jwks.json' },
        'system/*.cruds',
      );
    const id = await started(await clientToken(user, client.id, 'system/*.cruds'), code, path);

    await testApp.app.get(BackendClientsService).disable(name);
    const before = hits(`/hooks/${path}`);
    await observe(code);
    const stored = await stopped(id);
    expect(stored['error']).toBe(
      'The backend client it was written with was disabled; set status to requested to start it again (whoever does becomes its owner)',
    );
    await settled(id);
    expect(hits(`/hooks/${path}`)).toBe(before);
    expect((await auditRows(id)).map((row) => row.detail)).toEqual([
      'active accepted',
      `error owner=backend-client-disabled client=${client.id}`,
    ]);
  });

  it('stops those of a disabled account the same way; enabling it does not restart them', async () => {
    const code = `o-${run}-user`;
    const path = `user-${run}`;
    const { user, as } = await userWith('doctor');
    const id = await started(as, code, path);

    await testApp.app.get(UsersService).disable(user.username);
    const before = hits(`/hooks/${path}`);
    await observe(code);
    const stored = await stopped(id);
    expect(stored['error']).toBe(
      'The account that wrote it was disabled; set status to requested to start it again (whoever does becomes its owner)',
    );
    expect((await auditRows(id)).map((row) => row.detail)).toEqual([
      'active accepted',
      'error owner=account-disabled',
    ]);

    await testApp.app.get(UsersService).enable(user.username);
    await observe(code);
    await settled(id);
    expect(hits(`/hooks/${path}`)).toBe(before);
    expect((await statusOf(writer, id))['status']).toBe('error');
  });
});
