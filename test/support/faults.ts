import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type pg from 'pg';
import { http } from './http.js';
import { BUILT, runNode, serviceEnv, type RunningService } from './process.js';

/**
 * Helpers of the fault tests (`npm run test:faults`), which run the built service as a child
 * process and break what is under it.
 */

/**
 * The environment of a service under a fault test: its database, data directory and own PHI
 * key, logs at info (the MLLP port is read from them), rate limits out of the load's way.
 */
export function faultEnv(
  databaseUrl: string,
  dataDir: string,
  extra: Record<string, string> = {},
): Record<string, string> {
  return serviceEnv(databaseUrl, dataDir, { RATE_LIMIT_PER_MINUTE: '1000000', ...extra });
}

/** A user made with the admin CLI, logged in over HTTP: its bearer token. */
export async function cliUserToken(
  env: Record<string, string>,
  url: string,
  role = 'doctor',
): Promise<string> {
  const username = `fault-${randomUUID().slice(0, 8)}`;
  const password = `Fault-${randomUUID()}`;
  const created = await runNode(
    BUILT.cli,
    ['user:create', '--username', username, '--role', role],
    env,
    { stdin: `${password}\n` },
  );
  if (created.code !== 0) throw new Error(`user:create failed:\n${created.stderr}`);
  const session = await http('POST', `${url}/auth/login`, {
    body: { username, password },
    headers: { 'content-type': 'application/json' },
  });
  if (session.status !== 200) throw new Error(`login failed: ${session.status}`);
  return session.body.access_token as string;
}

/** Resident memory of a process, in bytes (Linux). */
export async function rssOf(service: RunningService): Promise<number> {
  const status = await readFile(`/proc/${service.child.pid}/status`, 'utf8');
  const kb = /^VmRSS:\s+(\d+) kB$/m.exec(status);
  if (!kb) throw new Error('no VmRSS');
  return Number(kb[1]) * 1024;
}

/** An ORU^R01 with one OBR and `results` numeric OBX for a patient of its own. */
export function labReport(tag: string, results = 5): Buffer {
  return Buffer.from(
    [
      `MSH|^~\\&|LAB|FAULTLAB|CV|CV|20240101120000+0000||ORU^R01|${tag}|P|2.5`,
      `PID|1||${tag}^^^FAULTLAB&1.2.3.5&ISO^MR||Fault^Lab||19700101|F`,
      `OBR|1|ORD-${tag}|FIL-${tag}|24331-1^Lipid panel^LN|||20240101110000`,
      ...Array.from(
        { length: results },
        (_, i) => `OBX|${i + 1}|NM|2093-${i}^Result ${i}^LN||${100 + i}|mg/dL|||||F`,
      ),
    ].join('\r'),
  );
}

/** A transaction Bundle: one Patient with identifier `tag` and `observations` about it. */
export function patientTransaction(tag: string, observations = 5): Record<string, unknown> {
  const patientUrl = `urn:uuid:${randomUUID()}`;
  return {
    resourceType: 'Bundle',
    type: 'transaction',
    entry: [
      {
        fullUrl: patientUrl,
        resource: {
          resourceType: 'Patient',
          identifier: [{ system: FAULT_SYSTEM, value: tag }],
          name: [{ family: 'Fault', given: ['Transaction'] }],
          birthDate: '1970-01-01',
        },
        request: { method: 'POST', url: 'Patient' },
      },
      ...Array.from({ length: observations }, (_, i) => ({
        resource: {
          resourceType: 'Observation',
          status: 'final',
          code: { coding: [{ system: 'http://loinc.org', code: `2345-${i}` }] },
          subject: { reference: patientUrl },
          valueQuantity: { value: i, unit: 'mmol/L' },
        },
        request: { method: 'POST', url: 'Observation' },
      })),
    ],
  };
}

export const FAULT_SYSTEM = 'urn:carevault:fault-test';

/** The Patient id in a transaction-response (its first entry's location). */
export function patientIdOf(response: { entry?: { response?: { location?: string } }[] }): string {
  const location = response.entry?.[0]?.response?.location ?? '';
  const match = /^Patient\/([^/]+)/.exec(location);
  if (!match) throw new Error(`no Patient location in the response: ${location}`);
  return match[1]!;
}

/** Polls `check` until it returns true; throws after `timeoutMs`. */
export async function eventually(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs = 30_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (
    !(await Promise.resolve()
      .then(check)
      .catch(() => false))
  ) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

/** Rows of the tables a write touches: a refused write must leave every count as it was. */
export async function writtenRowCounts(client: pg.Client): Promise<Record<string, number>> {
  const { rows } = await client.query<{ what: string; n: string }>(
    `SELECT 'resource' AS what, count(*) AS n FROM resource
     UNION ALL SELECT 'history', count(*) FROM resource_history
     UNION ALL SELECT 'hl7', count(*) FROM hl7_message
     UNION ALL SELECT 'outbox', count(*) FROM hl7_outbox`,
  );
  return Object.fromEntries(rows.map((row) => [row.what, Number(row.n)]));
}
