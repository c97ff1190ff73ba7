import pg from 'pg';
import { DataSource } from 'typeorm';
import { AuditVerifier } from '../../src/audit/audit-verifier.js';
import { tokenFor } from '../support/auth.js';
import { withEnv } from '../support/env.js';
import { buildPatient } from '../support/factories.js';
import { authorizedHttp, http, type HttpFn } from '../support/http.js';
import {
  appOnScratchDatabase,
  createScratchDatabase,
  type ScratchDatabase,
} from '../support/scratch-database.js';
import { createTestApp, type TestApp } from '../support/test-app.js';

/**
 * The service's connection pool. One whose every connection stays in use is not a database
 * outage: the request that finds no free connection within DATABASE_WAIT_MS gets a 503 that
 * says the server is busy, and the requests holding the connections finish once they can.
 */
describe('The database connection pool', () => {
  let database: ScratchDatabase;
  let restoreEnv: () => void;
  let testApp: TestApp;
  let locker: pg.Client;
  let watcher: pg.Client;
  let api: HttpFn;
  let patientUrl: string;

  beforeAll(async () => {
    // A database of its own: the test locks a whole table.
    database = await createScratchDatabase();
    // A hospital's server keeps local time and its habits: these are the database's defaults
    // for every new session, which the service must not depend on.
    const name = new URL(database.url).pathname.slice(1);
    const admin = new pg.Client({ connectionString: database.url });
    await admin.connect();
    await admin.query(`ALTER DATABASE "${name}" SET TimeZone = 'Pacific/Chatham'`);
    await admin.query(`ALTER DATABASE "${name}" SET DateStyle = 'SQL, DMY'`);
    await admin.query(`ALTER DATABASE "${name}" SET IntervalStyle = 'postgres_verbose'`);
    await admin.end();
    restoreEnv = withEnv({
      DATABASE_URL: database.url,
      DATABASE_POOL_SIZE: '2',
      DATABASE_WAIT_MS: '500',
    });
    testApp = await createTestApp();
    api = authorizedHttp(await tokenFor(testApp, 'doctor'));
    const created = await api('POST', `${testApp.url}/fhir/Patient`, { body: buildPatient() });
    expect(created.status).toBe(201);
    patientUrl = `${testApp.url}/fhir/Patient/${(created.body as { id: string }).id}`;
    locker = new pg.Client({ connectionString: database.url });
    await locker.connect();
    // Another session: pg_stat_activity is a snapshot taken once per transaction.
    watcher = new pg.Client({ connectionString: database.url });
    await watcher.connect();
  });

  afterAll(async () => {
    await locker.end();
    await watcher.end();
    await testApp.close();
    restoreEnv();
    await database.drop();
  });

  it("reads times the same whatever the database's TimeZone and DateStyle", async () => {
    const created = await api('GET', patientUrl);
    expect(created.status).toBe(200);
    const lastUpdated = (created.body as { meta: { lastUpdated: string } }).meta.lastUpdated;
    expect(lastUpdated).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    const history = await api('GET', `${patientUrl}/_history`);
    expect(history.status).toBe(200);
    expect(history.body).toMatchObject({ entry: [{ resource: { meta: { lastUpdated } } }] });
    const since = new Date(Date.parse(lastUpdated) - 1000).toISOString();
    const search = await api('GET', `${testApp.url}/fhir/Patient?_lastUpdated=ge${since}`);
    expect(search.status).toBe(200);
    expect((search.body as { entry: unknown[] }).entry).toHaveLength(1);
    const verifier = testApp.app.get(AuditVerifier);
    const report = await verifier.verify(await verifier.databaseSource());
    expect(report).toMatchObject({ ok: true });
    expect(report.rows).toBeGreaterThan(0);
  });

  async function waitingOnLocks(): Promise<number> {
    const { rows } = await watcher.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM pg_stat_activity
        WHERE datname = current_database() AND wait_event_type = 'Lock'`,
    );
    return rows[0]!.n;
  }

  it('turns PostgreSQL’s JIT compilation off on its connections', async () => {
    const dataSource = testApp.app.get(DataSource);
    const [setting] = await dataSource.query<{ jit: string }[]>('SHOW jit');
    expect(setting?.jit).toBe('off');
  });

  it('refuses the request that finds no free connection with 503 throttled, and serves the rest', async () => {
    expect((await http('GET', `${testApp.url}/health/ready`)).status).toBe(200);

    await locker.query('BEGIN');
    await locker.query('LOCK TABLE resource IN ACCESS EXCLUSIVE MODE');
    // Two reads take both connections of the pool and wait on the lock.
    const held = [api('GET', patientUrl), api('GET', patientUrl)];
    const deadline = Date.now() + 10_000;
    while ((await waitingOnLocks()) < 2) {
      expect(Date.now()).toBeLessThan(deadline);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }

    const refused = await api('GET', patientUrl);
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).toBe('5');
    expect(refused.headers.get('content-type')).toContain('application/fhir+json');
    expect(refused.body).toMatchObject({
      resourceType: 'OperationOutcome',
      issue: [{ code: 'throttled', diagnostics: expect.stringMatching(/^The server is busy/) }],
    });

    const ready = await http('GET', `${testApp.url}/health/ready`);
    expect(ready.status).toBe(503);
    expect(ready.body).toMatchObject({ issue: [{ code: 'throttled' }] });

    await locker.query('COMMIT');
    for (const answer of await Promise.all(held)) {
      expect(answer.status).toBe(200);
    }
    expect((await http('GET', `${testApp.url}/health/ready`)).status).toBe(200);
    expect((await api('GET', patientUrl)).status).toBe(200);
  });
});

/**
 * DATABASE_STATEMENT_TIMEOUT_MS: a statement that runs past it (here, one waiting on a lock) is
 * cancelled by PostgreSQL, and the request gets a 503 that says so instead of waiting on.
 */
describe('The statement timeout of the service’s connections', () => {
  let scratch: Awaited<ReturnType<typeof appOnScratchDatabase>>;
  let testApp: TestApp;
  let locker: pg.Client;
  let api: HttpFn;

  beforeAll(async () => {
    scratch = await appOnScratchDatabase({ DATABASE_STATEMENT_TIMEOUT_MS: '1000' });
    testApp = scratch.testApp;
    api = authorizedHttp(await tokenFor(testApp, 'doctor'));
    locker = new pg.Client({ connectionString: scratch.database.url });
    await locker.connect();
  });

  afterAll(async () => {
    await locker.end();
    await scratch.close();
  });

  it('is set on every connection of the pool', async () => {
    const [setting] = await testApp.app
      .get(DataSource)
      .query<{ statement_timeout: string }[]>('SHOW statement_timeout');
    expect(setting?.statement_timeout).toBe('1s');
  });

  it('stops a statement that runs past it with 503 too-costly, and the pool serves on', async () => {
    const created = await api('POST', `${testApp.url}/fhir/Patient`, { body: buildPatient() });
    const patientUrl = `${testApp.url}/fhir/Patient/${(created.body as { id: string }).id}`;
    await locker.query('BEGIN');
    try {
      await locker.query('LOCK TABLE resource IN ACCESS EXCLUSIVE MODE');
      const stopped = await api('GET', patientUrl);
      expect(stopped.status).toBe(503);
      expect(stopped.body).toMatchObject({
        resourceType: 'OperationOutcome',
        issue: [
          {
            code: 'too-costly',
            diagnostics: expect.stringMatching(/longer than the database allows/),
          },
        ],
      });
    } finally {
      await locker.query('ROLLBACK');
    }
    expect((await api('GET', patientUrl)).status).toBe(200);
  });
});

/**
 * SEARCH_TIMEOUT_MS: a search's statements are cancelled past it (here, waiting on a lock), with
 * the 503 too-costly of the statement timeout, where 20 costly searches held every connection
 * of the pool for DATABASE_STATEMENT_TIMEOUT_MS (a minute). Writes keep the longer limit.
 */
describe('The search timeout', () => {
  let scratch: Awaited<ReturnType<typeof appOnScratchDatabase>>;
  let testApp: TestApp;
  let locker: pg.Client;
  let watcher: pg.Client;
  let api: HttpFn;

  beforeAll(async () => {
    // No limit but the search's: a search that escaped it would wait for the lock, not 503.
    scratch = await appOnScratchDatabase({
      SEARCH_TIMEOUT_MS: '1000',
      DATABASE_STATEMENT_TIMEOUT_MS: '0',
    });
    testApp = scratch.testApp;
    api = authorizedHttp(await tokenFor(testApp, 'doctor'));
    locker = new pg.Client({ connectionString: scratch.database.url });
    await locker.connect();
    watcher = new pg.Client({ connectionString: scratch.database.url });
    await watcher.connect();
  });

  afterAll(async () => {
    await locker.end();
    await watcher.end();
    await scratch.close();
  });

  it('stops a search past it with 503 too-costly, while a write waiting as long goes on', async () => {
    const fhir = `${testApp.url}/fhir`;
    await locker.query('BEGIN');
    let write: Promise<{ status: number }> | undefined;
    try {
      // Both: a type's or the system's history reads the versions table alone.
      await locker.query('LOCK TABLE resource, resource_history IN ACCESS EXCLUSIVE MODE');
      write = api('POST', `${fhir}/Patient`, { body: buildPatient() });
      // The write waits on the lock before the search starts, and so waits longer than it.
      for (let waiting = 0; waiting === 0;) {
        await new Promise((resolve) => setTimeout(resolve, 50));
        const { rows } = await watcher.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM pg_stat_activity
            WHERE application_name = 'carevault' AND wait_event_type = 'Lock'`,
        );
        waiting = rows[0]!.n;
      }
      for (const [method, url] of [
        ['GET', `${fhir}/Patient?family=Nobody`],
        ['GET', `${fhir}/Patient?_summary=count`],
        ['GET', `${fhir}/Observation/$lastn?patient=Patient/nobody`],
        ['GET', `${fhir}/Patient/_history?_count=1`],
        ['GET', `${fhir}/_history?_count=1`],
      ] as const) {
        const stopped = await api(method, url);
        expect(stopped.status).toBe(503);
        expect(stopped.body).toMatchObject({
          resourceType: 'OperationOutcome',
          issue: [
            {
              code: 'too-costly',
              diagnostics: expect.stringMatching(/longer than the database allows/),
            },
          ],
        });
      }
      // Cancelled in PostgreSQL, not only answered: the write is the one statement still waiting.
      const { rows: waiting } = await watcher.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM pg_stat_activity
          WHERE application_name = 'carevault' AND wait_event_type = 'Lock'`,
      );
      expect(waiting[0]!.n).toBe(1);
      const batch = await api('POST', fhir, {
        body: {
          resourceType: 'Bundle',
          type: 'batch',
          entry: [{ request: { method: 'GET', url: 'Patient?family=Nobody' } }],
        },
      });
      expect(batch.status).toBe(200);
      expect(batch.body.entry[0].response.status).toBe('503');
    } finally {
      await locker.query('ROLLBACK');
    }
    expect((await write)?.status).toBe(201);
    expect((await api('GET', `${testApp.url}/fhir/Patient?family=Nobody`)).status).toBe(200);
  });
});
