import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { EmbeddedPostgres, freePort } from '../../src/database/embedded-postgres.js';
import {
  cliUserToken,
  faultEnv,
  eventually,
  FAULT_SYSTEM,
  labReport,
  patientIdOf,
  patientTransaction,
  writtenRowCounts,
} from '../support/faults.js';
import { authorizedHttp, http, type HttpResult } from '../support/http.js';
import { buildPatient } from '../support/factories.js';
import { msaOf, MllpTestClient } from '../support/mllp.js';
import {
  BUILT,
  mllpPortOf,
  runNode,
  startService,
  type RunningService,
} from '../support/process.js';

/** Longer than any answer may take: a request that hangs fails the test instead of the suite. */
const HANG = 20_000;

describe('PostgreSQL stopped or read-only under a running service', () => {
  let dataDir: string;
  let postgres: EmbeddedPostgres;
  let url: string;
  let env: Record<string, string>;
  let service: RunningService;
  let api: ReturnType<typeof authorizedHttp>;

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'carevault-fault-db-'));
    // A server of its own on a fixed port, so that it comes back where the service expects it.
    // (It runs as another user, which needs to reach its directory: EmbeddedPostgres opens up
    // the one it is given, not the parents.)
    postgres = new EmbeddedPostgres(dataDir, await freePort());
    url = await postgres.start();
    env = faultEnv(url, join(dataDir, 'service'), { MIGRATIONS_RUN: 'true' });
    service = await startService(env);
    api = authorizedHttp(await cliUserToken(env, service.url));
  }, 120_000);

  afterAll(async () => {
    await service?.stop('SIGTERM');
    await postgres.stop();
    await rm(dataDir, { recursive: true, force: true });
  });

  const get = (path: string): Promise<HttpResult> => api('GET', `${service.url}${path}`);

  /** A request that must be answered, whatever the answer, well before HANG. */
  const timed = async (request: () => Promise<HttpResult>): Promise<HttpResult> => {
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        request(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no answer in ${HANG} ms`)), HANG);
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  };

  it('answers 503 OperationOutcome while it is down, turns unready, and recovers by itself', async () => {
    const created = await api('POST', `${service.url}/fhir/Patient`, { body: buildPatient() });
    expect(created.status).toBe(201);
    const pid = service.child.pid;

    // Load from several clients across the outage: reads and creates, every answer noted.
    const statuses: number[] = [];
    const committed: string[] = [];
    let running = true;
    const load = async (n: number): Promise<void> => {
      for (let i = 0; running; i++) {
        const res =
          i % 2 === 0
            ? await timed(() => get(`/fhir/Patient/${created.body.id}`))
            : await timed(() =>
                api('POST', `${service.url}/fhir`, {
                  body: patientTransaction(`OUT-${n}-${i}`, 2),
                }),
              );
        statuses.push(res.status);
        if (res.status === 200 && i % 2 === 1) committed.push(patientIdOf(res.body));
        if (res.status === 503) {
          expect(res.headers.get('content-type')).toContain('application/fhir+json');
          expect(res.headers.get('retry-after')).toBe('5');
          expect(res.body.resourceType).toBe('OperationOutcome');
          expect(res.body.issue[0].code).toBe('transient');
          expect(res.body.issue[0].diagnostics).toMatch(/^The database is unavailable/);
        }
      }
    };
    const clients = Promise.all([0, 1, 2, 3].map((n) => load(n)));
    try {
      await new Promise((resolve) => setTimeout(resolve, 1000));
      await postgres.stop();
      await eventually('requests to fail with 503', () =>
        statuses.slice(-8).every((status) => status === 503),
      );
      // Probes: alive, not ready.
      expect((await timed(() => http('GET', `${service.url}/health`))).status).toBe(200);
      const ready = await timed(() => http('GET', `${service.url}/health/ready`));
      expect(ready.status).toBe(503);
      expect(ready.body.resourceType).toBe('OperationOutcome');
      // HL7: a message that cannot be stored gets no ACK; the sender keeps it and resends.
      const hl7 = await MllpTestClient.connect(mllpPortOf(service));
      await hl7.send([labReport('OUTAGE-1')]);
      await hl7.waitForClose();
      expect(hl7.acks).toEqual([]);

      await postgres.start();
      await eventually('readiness to come back', async () => {
        return (await http('GET', `${service.url}/health/ready`)).status === 200;
      });
      await eventually('requests to succeed again', () =>
        statuses.slice(-8).every((status) => status === 200),
      );
    } finally {
      running = false;
      await clients;
    }
    expect(service.child.pid).toBe(pid);
    expect(service.child.exitCode).toBeNull();
    // Nothing but successes and clean 503s, and every committed transaction is there.
    expect(new Set(statuses)).toEqual(new Set([200, 503]));
    for (const id of committed) {
      expect((await get(`/fhir/Observation?subject=Patient/${id}&_summary=count`)).body.total).toBe(
        2,
      );
    }
    const resent = await MllpTestClient.connect(mllpPortOf(service));
    await resent.send([labReport('OUTAGE-1')]);
    expect((await resent.waitForAcks(1)).map(msaOf)).toEqual([
      { code: 'AA', controlId: 'OUTAGE-1' },
    ]);
    resent.close();
  }, 180_000);

  it('refuses writes with a clear 503 while the database is read-only, and writes nothing', async () => {
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    try {
      // Every session, the service's pooled ones too, picks the setting up on reload.
      await admin.query('ALTER SYSTEM SET default_transaction_read_only = on');
      await admin.query('SELECT pg_reload_conf()');
      await eventually('the pool to see a read-only database', async () => {
        const res = await api('POST', `${service.url}/fhir/Patient`, { body: buildPatient() });
        return res.status === 503;
      });
      const before = await writtenRowCounts(admin);
      const write = await timed(() =>
        api('POST', `${service.url}/fhir`, { body: patientTransaction('READ-ONLY-1', 3) }),
      );
      expect(write.status).toBe(503);
      expect(write.body.issue[0]).toMatchObject({
        code: 'transient',
        diagnostics: expect.stringMatching(/^The database is read-only/),
      });
      const hl7 = await MllpTestClient.connect(mllpPortOf(service));
      await hl7.send([labReport('READ-ONLY-2')]);
      await hl7.waitForClose();
      expect(hl7.acks).toEqual([]);
      expect(await writtenRowCounts(admin)).toEqual(before);

      await admin.query('ALTER SYSTEM RESET default_transaction_read_only');
      await admin.query('SELECT pg_reload_conf()');
      await eventually('writes to succeed again', async () => {
        const res = await api('POST', `${service.url}/fhir`, {
          body: patientTransaction('READ-ONLY-1', 3),
        });
        return res.status === 200;
      });
      const found = await get(
        `/fhir/Patient?identifier=${encodeURIComponent(`${FAULT_SYSTEM}|READ-ONLY-1`)}`,
      );
      expect(found.body.entry).toHaveLength(1);
    } finally {
      await admin.query('ALTER SYSTEM RESET default_transaction_read_only');
      await admin.query('SELECT pg_reload_conf()');
      await admin.end();
    }
    // Through the outage and the read-only spell, the audit chain stayed whole.
    const verified = await runNode(BUILT.cli, ['audit:verify'], env);
    expect(verified.stdout).toContain('Audit chain verified');
    expect(verified.code).toBe(0);
  }, 120_000);
});
