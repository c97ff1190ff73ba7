import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { msaOf, MllpTestClient } from '../support/mllp.js';
import { BUILT, mllpPortOf, runNode, serviceEnv, startService } from '../support/process.js';
import { createScratchDatabase, type ScratchDatabase } from '../support/scratch-database.js';

const COUNT = 300;

function admission(i: number): Buffer {
  return Buffer.from(
    [
      `MSH|^~\\&|ADMIT|KILLTEST|CV|CV|20240101120000+0000||ADT^A04|K-${i}|P|2.5`,
      `PID|1||KILL-${i}^^^KILLTEST&1.2.3.4&ISO^MR||Kill^Test${i}||19700101|F`,
      `PV1|1|O|||||||||||||||||KV-${i}^^^KILLTEST&1.2.3.4&ISO^VN`,
    ].join('\r'),
  );
}

describe('HL7 durability: SIGKILL and SIGTERM in the middle of a stream', () => {
  let database: ScratchDatabase;
  let dataDir: string;
  let db: pg.Client;
  /** One environment for both tests: a second PHI key could not read what the first wrote. */
  let env: Record<string, string>;

  beforeAll(async () => {
    database = await createScratchDatabase();
    dataDir = await mkdtemp(join(tmpdir(), 'carevault-hl7-kill-'));
    env = serviceEnv(database.url, dataDir);
    db = new pg.Client({ connectionString: database.url });
    await db.connect();
  });

  afterAll(async () => {
    await db.end();
    await database.drop();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('keeps every ACKed message processed, and processes resent ones exactly once', async () => {
    const messages = Array.from({ length: COUNT }, (_, i) => admission(i));
    const first = await startService(env);
    const sender = await MllpTestClient.connect(mllpPortOf(first));
    await sender.send(messages);
    // Kill once part of the stream is acknowledged and the rest is in flight.
    await sender.waitForAcks(COUNT / 10);
    await first.stop('SIGKILL');
    const acked = sender.acks.map((ack) => msaOf(ack));
    sender.close();
    expect(acked.length).toBeLessThan(COUNT);
    for (const ack of acked) expect(ack.code).toBe('AA');

    // Every ACKed message is stored, processed, and its Patient committed with it.
    const { rows: stored } = await db.query<{ control_id: string; status: string }>(
      `SELECT control_id, status FROM hl7_message WHERE control_id = ANY($1)`,
      [acked.map((ack) => ack.controlId)],
    );
    expect(stored).toHaveLength(acked.length);
    for (const row of stored) expect(row.status).toBe('processed');

    // The sender resends everything it has no ACK for (and, to be sure, the rest too).
    const second = await startService(env);
    const resender = await MllpTestClient.connect(mllpPortOf(second));
    await resender.send(messages);
    const acks = await resender.waitForAcks(COUNT);
    resender.close();
    expect(acks.map((ack) => msaOf(ack))).toEqual(
      messages.map((_, i) => ({ code: 'AA', controlId: `K-${i}` })),
    );
    await second.stop('SIGTERM');

    // Each message once, each patient once, each visit once: nothing twice, nothing lost.
    const count = async (sql: string): Promise<number> =>
      Number((await db.query<{ n: string }>(sql)).rows[0]!.n);
    expect(await count(`SELECT count(*) AS n FROM hl7_message WHERE status = 'processed'`)).toBe(
      COUNT,
    );
    expect(await count(`SELECT count(*) AS n FROM resource WHERE resource_type = 'Patient'`)).toBe(
      COUNT,
    );
    expect(
      await count(`SELECT count(*) AS n FROM resource WHERE resource_type = 'Encounter'`),
    ).toBe(COUNT);
    expect(
      await count(
        `SELECT count(*) AS n FROM audit_event WHERE source = 'hl7' AND outcome = 'success'`,
      ),
    ).toBe(COUNT);
    // And the audit chain, written across the kill, still verifies.
    const verified = await runNode(BUILT.cli, ['audit:verify'], env);
    expect(verified.code).toBe(0);
  });

  it('on SIGTERM, ACKs every message it committed and leaves none stored unprocessed', async () => {
    const service = await startService(env);
    const port = mllpPortOf(service);
    // Several pipelining senders, each with messages still waiting their turn at the signal.
    const senders = await Promise.all([0, 1, 2, 3].map(() => MllpTestClient.connect(port)));
    await Promise.all(
      senders.map((sender, c) =>
        sender.send(Array.from({ length: 100 }, (_, i) => admission(1000 + c * 100 + i))),
      ),
    );
    await Promise.all(senders.map((sender) => sender.waitForAcks(5)));
    expect(await service.stop('SIGTERM')).toEqual({ code: 0, signal: null });
    await Promise.all(
      senders.map((sender) => new Promise((resolve) => setTimeout(resolve, 100, sender.close()))),
    );
    const acked = senders.flatMap((sender) => sender.acks.map((ack) => msaOf(ack)));
    for (const ack of acked) expect(ack.code).toBe('AA');

    const { rows } = await db.query<{ control_id: string; status: string }>(
      `SELECT control_id, status FROM hl7_message WHERE control_id = ANY($1)`,
      [Array.from({ length: 400 }, (_, i) => `K-${1000 + i}`)],
    );
    // A message the sender has no ACK for is either not stored (it resends it) or processed;
    // none waits as `received` for a resend that may never come, and none is ACKed uncommitted.
    expect(rows.filter((row) => row.status !== 'processed')).toEqual([]);
    expect(rows.map((row) => row.control_id).sort()).toEqual(
      acked.map((ack) => ack.controlId).sort(),
    );
    const verified = await runNode(BUILT.cli, ['audit:verify'], env);
    expect(verified.code).toBe(0);
  });
});
