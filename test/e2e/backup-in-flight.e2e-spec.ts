import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { MllpListener } from '../../src/hl7/mllp/mllp-listener.js';
import { tokenFor } from '../support/auth.js';
import { startCliHost, type CliHost } from '../support/cli.js';
import { withEnv } from '../support/env.js';
import { buildPatient } from '../support/factories.js';
import { authorizedHttp } from '../support/http.js';
import { MllpTestClient, msaOf } from '../support/mllp.js';
import { serviceEnv } from '../support/process.js';
import { createScratchDatabase, type ScratchDatabase } from '../support/scratch-database.js';
import { createTestApp } from '../support/test-app.js';

/** A port nothing listens on: the outbound destination whose messages stay undelivered. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function queryOne<T>(url: string, sql: string, parameters: unknown[] = []): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query(sql, parameters)).rows[0] as T;
  } finally {
    await client.end();
  }
}

describe('backup and restore of HL7 messages in flight', () => {
  const phiKey = randomBytes(32).toString('base64');
  let source: ScratchDatabase;
  let target: ScratchDatabase;
  let dir: string;
  let host: CliHost;
  const cli = (database: ScratchDatabase, args: string[]) =>
    host.run(
      args,
      serviceEnv(database.url, join(dir, 'data'), { PHI_MASTER_KEY: phiKey, LOG_LEVEL: 'warn' }),
    );

  beforeAll(async () => {
    host = await startCliHost();
    source = await createScratchDatabase();
    target = await createScratchDatabase(false);
    dir = await mkdtemp(join(tmpdir(), 'carevault-backup-in-flight-'));
  });

  afterAll(async () => {
    await host?.close();
    await Promise.all([source?.drop(), target?.drop()]);
    await rm(dir, { recursive: true, force: true });
  });

  it('says what to do with an inbound message stored but unprocessed and an outbound one undelivered', async () => {
    const file = join(dir, 'in-flight.backup');
    const destination = `127.0.0.1:${await closedPort()}`;
    const a01 =
      'MSH|^~\\&|ADT|HOSP|CV|CV|20240101||ADT^A01|INFLIGHT1|P|2.5\r' +
      'PID|1||IF-1^^^HOSP&2.16.9&ISO^MR||Inflight^Al\rPV1|1|I|||||||||||||||||V-IF1^^^HOSP&2.16.9&ISO^VN';
    const restoreEnv = withEnv({
      DATABASE_URL: source.url,
      PHI_MASTER_KEY: phiKey,
      DATA_DIR: join(dir, 'data'),
      HL7_OUTBOUND: destination,
    });
    const testApp = await createTestApp();
    try {
      // A Patient written through the API: its ADT waits in the outbox, the receiver being down.
      const http = authorizedHttp(await tokenFor(testApp, 'doctor'));
      const created = await http('POST', `${testApp.url}/fhir/Patient`, {
        body: buildPatient(),
        headers: { 'content-type': 'application/fhir+json' },
      });
      expect(created.status).toBe(201);

      // The backup falls between an inbound message's store and its processing: the resource
      // table held, the message commits as received and its processing waits.
      const blocker = new pg.Client({ connectionString: source.url });
      await blocker.connect();
      const sender = await MllpTestClient.connect(testApp.app.get(MllpListener).address()!.port);
      try {
        await blocker.query('BEGIN');
        await blocker.query('LOCK TABLE resource IN EXCLUSIVE MODE');
        await sender.send([Buffer.from(a01)]);
        for (let i = 0; ; i++) {
          const stored = await queryOne<{ n: number }>(
            source.url,
            `SELECT count(*)::int AS n FROM hl7_message WHERE control_id = 'INFLIGHT1'`,
          );
          if (stored.n === 1) break;
          expect(i).toBeLessThan(100);
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
        expect(await cli(source, ['backup', file])).toMatchObject({ code: 0 });
      } finally {
        await blocker.query('ROLLBACK');
        await blocker.end();
      }
      // Then it is processed, and its sender has its AA: it will not send it again.
      expect(msaOf((await sender.waitForAcks(1))[0]!).code).toBe('AA');
      sender.close();
    } finally {
      await testApp.close();
      restoreEnv();
    }

    const restored = await cli(target, ['restore', file]);
    expect(restored).toMatchObject({ code: 0 });
    expect(restored.stdout).toMatch(
      /HL7 inbound: 1 message\(s\) stored but not yet processed when the backup was taken: run hl7:reprocess --status received/,
    );
    expect(restored.stdout).toContain(
      `HL7 outbound: 1 message(s) not yet delivered (${destination}: 1)`,
    );
    const inflight = `SELECT count(*)::int AS n FROM resource
       WHERE resource_type = 'Patient' AND NOT deleted`;
    expect(await queryOne(target.url, inflight)).toEqual({ n: 1 });

    // What the restore said to do files the message the backup caught unprocessed.
    const reprocessed = await cli(target, ['hl7:reprocess', '--status', 'received']);
    expect(reprocessed).toMatchObject({ code: 0 });
    expect(await queryOne(target.url, inflight)).toEqual({ n: 2 });
    expect(
      await queryOne(target.url, `SELECT status FROM hl7_message WHERE control_id = 'INFLIGHT1'`),
    ).toEqual({ status: 'processed' });
  });
});
