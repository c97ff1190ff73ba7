import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { eventually, faultEnv, labReport } from '../support/faults.js';
import { msaOf, MllpTestClient } from '../support/mllp.js';
import { mllpPortOf, startService, type RunningService } from '../support/process.js';
import { createScratchDatabase, type ScratchDatabase } from '../support/scratch-database.js';

/**
 * How long processing may hold a message without a statement (HL7_PROCESSING_HOLD_SECONDS),
 * shorter than its default of 30 s, which the test would wait out.
 */
const HOLD_SECONDS = 5;
const HOLD_MS = HOLD_SECONDS * 1000;
/** How long the trigger keeps the first instance's insert running, the freeze taken meanwhile. */
const SLEEP_SECONDS = 3;

/**
 * An instance that freezes (SIGSTOP, a paused VM) while it processes an inbound message holds
 * that message's row lock: the sender's resend, received by another instance, waits for it, and
 * MLLP senders send nothing else meanwhile. PostgreSQL must end the frozen session within the
 * bound, for its host's kernel still answers the TCP keepalives: the resend is answered then,
 * not after the statement timeout with no ACK, again and again for as long as the freeze lasts.
 */
describe('an instance that freezes while it processes an inbound HL7 message', () => {
  let database: ScratchDatabase;
  let dataDir: string;
  let db: pg.Client;
  const services: RunningService[] = [];
  const senders: MllpTestClient[] = [];

  beforeAll(async () => {
    database = await createScratchDatabase();
    dataDir = await mkdtemp(join(tmpdir(), 'carevault-fault-inbound-'));
    db = new pg.Client({ connectionString: database.url });
    await db.connect();
    // Resource writes sleep while fault_hold has a row: the first instance is frozen during one.
    await db.query(`
      CREATE TABLE fault_hold (held boolean);
      INSERT INTO fault_hold VALUES (true);
      CREATE FUNCTION fault_sleep() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF EXISTS (SELECT 1 FROM fault_hold) THEN PERFORM pg_sleep(${SLEEP_SECONDS}); END IF;
          RETURN NEW;
        END $$;
      CREATE TRIGGER fault_sleep BEFORE INSERT ON resource
        FOR EACH ROW EXECUTE FUNCTION fault_sleep();`);
  });

  afterAll(async () => {
    for (const sender of senders) sender.close();
    for (const service of services) {
      service.child.kill('SIGCONT');
      await service.stop('SIGKILL');
    }
    await db.end();
    await database.drop();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('lets another instance answer the resend once the frozen one has held it past the bound', async () => {
    // The statement timeout well past the bound: a resend that waits for the lock until then
    // would fail this test by its time, not be answered by an error.
    const env = faultEnv(database.url, dataDir, {
      DATABASE_STATEMENT_TIMEOUT_MS: '300000',
      HL7_PROCESSING_HOLD_SECONDS: String(HOLD_SECONDS),
    });
    const first = await startService(env);
    services.push(first);
    const message = labReport('FROZEN-1', 2);
    const sender = await MllpTestClient.connect(mllpPortOf(first));
    senders.push(sender);
    await sender.send([message]);
    // Frozen mid-processing: the message's row locked, its Patient being written.
    await eventually(
      'the first instance writing the message',
      async () =>
        (
          await db.query(
            `SELECT 1 FROM pg_stat_activity
              WHERE datname = current_database() AND wait_event = 'PgSleep'`,
          )
        ).rowCount === 1,
      20_000,
    );
    first.child.kill('SIGSTOP');
    const frozenAt = Date.now();
    await db.query('DELETE FROM fault_hold');

    // The sender, without its ACK, resends to another instance.
    const second = await startService(env);
    services.push(second);
    const resender = await MllpTestClient.connect(mllpPortOf(second));
    senders.push(resender);
    await resender.send([message]);
    const [ack] = await resender.waitForAcks(1, HOLD_MS + SLEEP_SECONDS * 1000 + 20_000);
    const answeredAt = Date.now();
    expect(msaOf(ack!)).toEqual({ code: 'AA', controlId: 'FROZEN-1' });
    // It did wait for the frozen instance: the resend was not answered from elsewhere.
    expect(answeredAt - frozenAt).toBeGreaterThan(HOLD_MS - 1_000);
    expect(sender.acks).toHaveLength(0);
    // Processed once, by the second instance: the frozen one's writes were rolled back.
    const { rows } = await db.query<{ status: string; attempts: number }>(
      `SELECT status, attempts FROM hl7_message WHERE control_id = 'FROZEN-1'`,
    );
    expect(rows).toEqual([{ status: 'processed', attempts: 1 }]);
  }, 180_000);
});
