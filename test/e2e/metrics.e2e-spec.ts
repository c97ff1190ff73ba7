import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataSource } from 'typeorm';
import { tokenFor } from '../support/auth.js';
import { withEnv } from '../support/env.js';
import { http } from '../support/http.js';
import { createTestApp, type TestApp } from '../support/test-app.js';

/** The value of one sample, e.g. sample(text, 'x_total{route="/a"}'); undefined when absent. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((candidate) => candidate.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('GET /metrics (Prometheus)', () => {
  let testApp: TestApp;
  let dir: string;
  let restoreEnv: () => void;
  const token = randomBytes(32).toString('hex');
  // Configured destinations no test connects to: their rows are never due, or dead.
  const FIRST = `metrics-a-${randomUUID().slice(0, 8)}.invalid:2575`;
  const SECOND = `tls://metrics-b-${randomUUID().slice(0, 8)}.invalid:2576`;
  // An envelope's shape (the column's check): never opened, as no sender takes the row.
  const SEALED = `cv1.k${'0'.repeat(12)}.${'A'.repeat(16)}..${'A'.repeat(22)}`;

  const scrape = async (): Promise<string> => {
    const res = await http('GET', `${testApp.url}/metrics`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/plain; version=0.0.4');
    return res.text;
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'carevault-metrics-'));
    await writeFile(join(dir, 'token'), `${token}\n`, { mode: 0o600 });
    restoreEnv = withEnv({
      METRICS_TOKEN_FILE: join(dir, 'token'),
      HL7_OUTBOUND: `${FIRST},${SECOND}/LIS`,
    });
    testApp = await createTestApp();
  });

  afterAll(async () => {
    await testApp.close();
    restoreEnv();
    await rm(dir, { recursive: true, force: true });
  });

  it('answers only the scraper token, with a Bearer challenge otherwise', async () => {
    for (const authorization of [undefined, `Bearer ${token}x`, `Basic ${token}`]) {
      const res = await http('GET', `${testApp.url}/metrics`, {
        headers: authorization ? { authorization } : {},
      });
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toMatch(/^Bearer /);
      expect(res.body.resourceType).toBe('OperationOutcome');
    }
    // A user's login token is not the scraper's.
    const user = await tokenFor(testApp, 'admin');
    const res = await http('GET', `${testApp.url}/metrics`, {
      headers: { authorization: `Bearer ${user}` },
    });
    expect(res.status).toBe(401);
  });

  it('counts requests by route template and status, never by URL, and times audit writes', async () => {
    const before = await scrape();
    const family = `Secret${randomUUID().slice(0, 8)}`;
    const doctor = await tokenFor(testApp, 'doctor');
    const search = await http('GET', `${testApp.url}/fhir/Patient?family=${family}`, {
      headers: { authorization: `Bearer ${doctor}` },
    });
    expect(search.status).toBe(200);
    const missing = await http('GET', `${testApp.url}/no/such/${family}`);
    expect(missing.status).toBe(404);
    const refused = await http('POST', `${testApp.url}/auth/login`, {
      body: { username: `nobody-${family}`, password: 'wrong-password-123' },
      headers: { 'content-type': 'application/json' },
    });
    expect(refused.status).toBe(401);

    const after = await scrape();
    expect(after).not.toContain(family);
    const searches = 'carevault_http_requests_total{method="GET",route="/fhir/:type",status="200"}';
    expect(sample(after, searches)).toBe((sample(before, searches) ?? 0) + 1);
    const unmatched = 'carevault_http_requests_total{method="GET",route="unmatched",status="404"}';
    expect(sample(after, unmatched)).toBeGreaterThanOrEqual(1);
    const failures = 'carevault_login_failures_total{route="/auth/login"}';
    expect(sample(after, failures)).toBe((sample(before, failures) ?? 0) + 1);
    expect(
      sample(
        after,
        'carevault_http_request_duration_seconds_count{method="GET",route="/fhir/:type",status="200"}',
      ),
    ).toBeGreaterThanOrEqual(1);
    expect(sample(after, 'carevault_audit_write_seconds_count{mode="queued"}')).toBeGreaterThan(
      sample(before, 'carevault_audit_write_seconds_count{mode="queued"}') ?? 0,
    );
  });

  it('reports the pool, the database, the HL7 backlogs and the process', async () => {
    const integration = await tokenFor(testApp, 'integration');
    const posted = await fetch(`${testApp.url}/hl7/v2`, {
      method: 'POST',
      headers: { authorization: `Bearer ${integration}`, 'content-type': 'text/plain' },
      body: 'MSH|^~\\&|MON|HOSP|CV|CV|20240101||ZZZ^Z01|MON-1|P|2.5\rPID|1||M-1^^^HOSP||Mon^Itor',
    });
    expect(posted.status).toBe(200);
    const text = await scrape();
    expect(sample(text, 'carevault_hl7_messages_total{status="rejected"}')).toBeGreaterThanOrEqual(
      1,
    );
    expect(sample(text, 'carevault_database_up')).toBe(1);
    expect(sample(text, 'carevault_db_pool_max')).toBeGreaterThan(0);
    expect(sample(text, 'carevault_db_pool_connections{state="total"}')).toBeGreaterThan(0);
    expect(sample(text, 'carevault_hl7_messages_stored{status="error"}')).toBeGreaterThanOrEqual(0);
    expect(sample(text, 'carevault_hl7_outbox_depth{status="pending"}')).toBeGreaterThanOrEqual(0);
    expect(sample(text, 'carevault_process_resident_memory_bytes')).toBeGreaterThan(0);
    expect(text).toContain('carevault_nodejs_eventloop_lag_p99_seconds');
    expect(text).toContain('# TYPE carevault_rate_limited_total counter');
  });

  it("shows how long each destination's queue has waited on its head, to tell a stuck one", async () => {
    // A destination no sender serves here (HL7_OUTBOUND does not name it): its head waits for good.
    const destination = `metrics-${randomUUID().slice(0, 8)}.invalid:2575`;
    const dataSource = testApp.app.get(DataSource);
    const insert = (minutesAgo: number) =>
      dataSource.query(
        `INSERT INTO hl7_outbox (id, destination, created_at, message_type, control_id,
                                 resource_type, resource_id, version_id, message, status,
                                 next_attempt_at)
         VALUES ($1, $2, now() - make_interval(mins => $3), 'ADT^A08', $4, 'Patient', $5, 1,
                 $6, 'pending', now())`,
        [
          randomUUID(),
          destination,
          minutesAgo,
          `CV${randomUUID().slice(0, 8)}`,
          randomUUID(),
          SEALED,
        ],
      );
    try {
      await insert(10);
      await insert(2);
      const series = `carevault_hl7_outbox_oldest_pending_seconds{destination="${destination}"}`;
      expect(sample(await scrape(), series)).toBeGreaterThanOrEqual(600);
      await dataSource.query(
        `UPDATE hl7_outbox SET status = 'sent', sent_at = now()
          WHERE destination = $1 AND created_at < now() - interval '5 minutes'`,
        [destination],
      );
      const age = sample(await scrape(), series)!;
      expect(age).toBeGreaterThanOrEqual(120);
      expect(age).toBeLessThan(600);
    } finally {
      await dataSource.query(`DELETE FROM hl7_outbox WHERE destination = $1`, [destination]);
    }
  });

  it('splits the outbox depth by configured destination, the others together, and keeps the total', async () => {
    const dataSource = testApp.app.get(DataSource);
    const removed = `metrics-gone-${randomUUID().slice(0, 8)}.invalid:2575`;
    const insert = (destination: string, status: 'pending' | 'dead') =>
      dataSource.query(
        `INSERT INTO hl7_outbox (id, destination, created_at, message_type, control_id,
                                 resource_type, resource_id, version_id, message, status,
                                 next_attempt_at)
         VALUES ($1, $2, now(), 'ADT^A08', $3, 'Patient', $4, 1, $5, $6, now() + interval '1 day')`,
        [randomUUID(), destination, `CV${randomUUID().slice(0, 8)}`, randomUUID(), SEALED, status],
      );
    const depth = (text: string, destination: string, status: string) =>
      sample(
        text,
        `carevault_hl7_outbox_destination_depth{destination="${destination}",status="${status}"}`,
      );
    const before = await scrape();
    try {
      await insert(FIRST, 'dead');
      await insert(FIRST, 'dead');
      await insert(SECOND, 'pending');
      await insert(removed, 'dead');
      const text = await scrape();
      expect(depth(text, FIRST, 'dead')).toBe(2);
      expect(depth(text, FIRST, 'pending')).toBe(0);
      expect(depth(text, SECOND, 'pending')).toBe(1);
      expect(depth(text, SECOND, 'dead')).toBe(0);
      expect(depth(text, 'unconfigured', 'dead')).toBe(
        (depth(before, 'unconfigured', 'dead') ?? 0) + 1,
      );
      // The total series stays as it was, for the dashboards and alerts built on it.
      for (const status of ['pending', 'dead']) {
        const parts = [FIRST, SECOND, 'unconfigured'].map((name) => depth(text, name, status) ?? 0);
        expect(sample(text, `carevault_hl7_outbox_depth{status="${status}"}`)).toBe(
          parts.reduce((sum, part) => sum + part, 0),
        );
      }
      // Label values are configured names only: a row's destination (any text in the table)
      // never becomes one, so the series stay as few as the destinations.
      const labels = text
        .split('\n')
        .filter((line) => line.startsWith('carevault_hl7_outbox_destination_depth{'))
        .map((line) => /destination="([^"]*)"/.exec(line)?.[1]);
      expect(new Set(labels)).toEqual(new Set([FIRST, SECOND, 'unconfigured']));
      expect(text).not.toContain(`destination_depth{destination="${removed}"`);
    } finally {
      await dataSource.query(`DELETE FROM hl7_outbox WHERE destination = ANY($1)`, [
        [FIRST, SECOND, removed],
      ]);
    }
  });
});
