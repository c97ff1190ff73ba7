import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { DataSource } from 'typeorm';
import { AppError } from '../../src/common/errors/app-error.js';
import { Hl7InboundService } from '../../src/hl7/inbound/hl7-inbound.service.js';
import { MllpListener } from '../../src/hl7/mllp/mllp-listener.js';
import { BUILT, childEnv, runNode } from '../support/process.js';
import { withEnv } from '../support/env.js';
import { untilWaitingForLock } from '../support/locks.js';
import { MllpTestClient, msaOf } from '../support/mllp.js';
import { createScratchDatabase, type ScratchDatabase } from '../support/scratch-database.js';
import { createTestApp, type TestApp } from '../support/test-app.js';

/** The advisory lock the injected failure waits on, held by the test until it lets it fail. */
const GATE = 424242;
/** The advisory lock a recorded rejection or ignore waits on, held by the test until it lets go. */
const OUTCOME_GATE = 424243;

/**
 * Two instances on one database, as README "Running several instances" runs them: a message
 * and its resend on two instances at once, and the operator's commands beside them.
 */
describe('HL7 across two instances on one database', () => {
  let database: ScratchDatabase;
  let restoreEnv: () => void;
  let first: TestApp;
  let second: TestApp;
  let db: pg.Client;

  beforeAll(async () => {
    database = await createScratchDatabase();
    restoreEnv = withEnv({
      DATABASE_URL: database.url,
      // A debugging message is refused (AR), a ZZZ^Z99 ignored: outcomes recorded unprocessed.
      HL7_PROCESSING_IDS: 'P',
      HL7_IGNORE: 'ZZZ^Z99',
    });
    first = await createTestApp();
    second = await createTestApp();
    db = new pg.Client({ connectionString: database.url });
    await db.connect();
    // A failure of processing the test controls: a Patient insert waits for the gate, then
    // fails (a plain error, not a database problem, so the message is answered AE).
    await db.query(`CREATE FUNCTION test_failing_patient() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.resource_type = 'Patient' THEN
          PERFORM pg_advisory_xact_lock(${GATE});
          RAISE EXCEPTION 'injected failure';
        END IF;
        RETURN NEW;
      END $$`);
    await db.query(`CREATE TRIGGER test_failing_patient BEFORE INSERT ON resource
      FOR EACH ROW EXECUTE FUNCTION test_failing_patient()`);
  });

  afterAll(async () => {
    await db.end();
    await first.close();
    await second.close();
    restoreEnv();
    await database.drop();
  });

  const portOf = (app: TestApp): number => app.app.get(MllpListener).address()!.port;

  it('processes a message and its resend on another instance once when processing fails', async () => {
    const tag = randomUUID().slice(0, 8);
    const message = [
      `MSH|^~\\&|ADT|HOSP|CV|CV|20250301100000||ADT^A28|${tag}|P|2.5`,
      `PID|1||${tag}^^^HOSP&2.16.77&ISO^MR||Twice^Tom`,
    ].join('\r');
    const toFirst = await MllpTestClient.connect(portOf(first));
    const toSecond = await MllpTestClient.connect(portOf(second));
    await db.query('SELECT pg_advisory_lock($1)', [GATE]);
    try {
      // The first instance is processing (the message row locked) when the resend reaches the
      // second, which waits for that row.
      const firstAck = toFirst.exchange([message]);
      await untilWaitingForLock(first.app.get(DataSource), 'the first instance', '%INSERT%');
      const secondAck = toSecond.exchange([message]);
      await untilWaitingForLock(
        first.app.get(DataSource),
        'the second instance',
        '%hl7_message%FOR UPDATE%',
      );
      await db.query('SELECT pg_advisory_unlock($1)', [GATE]);
      const acks = [...(await firstAck), ...(await secondAck)];
      // The second answers from the first's outcome: the same AE, not a second attempt.
      expect(acks.map((ack) => msaOf(ack).code)).toEqual(['AE', 'AE']);
      expect(acks[1]!.split('\r').find((s) => s.startsWith('ERR'))).toBe(
        acks[0]!.split('\r').find((s) => s.startsWith('ERR')),
      );
    } finally {
      await db.query('SELECT pg_advisory_unlock_all()');
      await db.query('DROP TRIGGER test_failing_patient ON resource');
      toFirst.close();
      toSecond.close();
    }
    const { rows } = await db.query<{ status: string; attempts: number }>(
      'SELECT status, attempts FROM hl7_message WHERE control_id = $1',
      [tag],
    );
    expect(rows).toEqual([{ status: 'error', attempts: 1 }]);
    const audited = await db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM audit_event WHERE source = 'hl7' AND outcome <> 'success'`,
    );
    expect(audited.rows[0]!.n).toBe(1);
  });

  it('purges no message acknowledged since --before, however long ago it was received', async () => {
    const tag = randomUUID().slice(0, 8);
    const adt = (control: string) =>
      [
        `MSH|^~\\&|ADT|HOSP|CV|CV|20250301100000||ADT^A28|${control}|P|2.5`,
        `PID|1||${control}^^^HOSP&2.16.78&ISO^MR||Purge^Pam`,
      ].join('\r');
    const sender = await MllpTestClient.connect(portOf(second));
    const acks = await sender.exchange([adt(`${tag}-late`), adt(`${tag}-old`)]);
    sender.close();
    expect(acks.map((ack) => msaOf(ack).code)).toEqual(['AA', 'AA']);
    // Both received 40 days ago; the first stayed `received` (its instance lost the database)
    // and was processed, and acknowledged, only now from its resend: its sender may yet send
    // it again, should that ACK be lost. The second was processed when it came.
    await db.query(
      `UPDATE hl7_message SET received_at = now() - interval '40 days' WHERE control_id LIKE $1`,
      [`${tag}-%`],
    );
    await db.query(
      `UPDATE hl7_message SET processed_at = now() - interval '40 days' WHERE control_id = $1`,
      [`${tag}-old`],
    );
    const before = new Date(Date.now() - 30 * 86_400_000).toISOString();
    const purged = await runNode(
      BUILT.cli,
      ['hl7:purge', '--before', before],
      childEnv({
        DATABASE_URL: database.url,
        PHI_MASTER_KEY: process.env['PHI_MASTER_KEY']!,
        LOG_LEVEL: 'silent',
      }),
    );
    expect(purged.code).toBe(0);
    const { rows } = await db.query<{ control_id: string }>(
      'SELECT control_id FROM hl7_message WHERE control_id LIKE $1',
      [`${tag}-%`],
    );
    expect(rows).toEqual([{ control_id: `${tag}-late` }]);
  });

  it('purges no message that another instance processes again while the purge waits for it', async () => {
    const tag = randomUUID().slice(0, 8);
    const sender = await MllpTestClient.connect(portOf(first));
    const [ack] = await sender.exchange([
      [
        `MSH|^~\\&|ADT|HOSP|CV|CV|20250301100000||ADT^A28|${tag}|P|2.5`,
        `PID|1||${tag}^^^HOSP&2.16.79&ISO^MR||Again^Ann`,
      ].join('\r'),
    ]);
    sender.close();
    expect(msaOf(ack!).code).toBe('AA');
    // Dismissed 40 days ago: the purge's to take, until it is processed again now.
    await db.query(
      `UPDATE hl7_message SET status = 'dismissed', received_at = now() - interval '40 days',
              processed_at = now() - interval '40 days' WHERE control_id = $1`,
      [tag],
    );
    const reprocessing = new pg.Client({ connectionString: database.url });
    await reprocessing.connect();
    let purged: Awaited<ReturnType<typeof runNode>>;
    try {
      // As a resend's processing on another instance holds the row, and then records AA.
      await reprocessing.query('BEGIN');
      await reprocessing.query(`SELECT 1 FROM hl7_message WHERE control_id = $1 FOR UPDATE`, [tag]);
      const purging = runNode(
        BUILT.cli,
        ['hl7:purge', '--before', new Date(Date.now() - 30 * 86_400_000).toISOString()],
        childEnv({
          DATABASE_URL: database.url,
          PHI_MASTER_KEY: process.env['PHI_MASTER_KEY']!,
          LOG_LEVEL: 'silent',
        }),
      );
      await untilWaitingForLock(
        first.app.get(DataSource),
        'hl7:purge',
        '%DELETE FROM hl7_message%',
      );
      await reprocessing.query(
        `UPDATE hl7_message SET status = 'processed', processed_at = now(), attempts = attempts + 1
          WHERE control_id = $1`,
        [tag],
      );
      await reprocessing.query('COMMIT');
      purged = await purging;
    } finally {
      await reprocessing.end();
    }
    expect(purged.code).toBe(0);
    const { rows } = await db.query<{ status: string }>(
      'SELECT status FROM hl7_message WHERE control_id = $1',
      [tag],
    );
    expect(rows).toEqual([{ status: 'processed' }]);
  });

  /** Until `count` sessions of the database wait for a lock, in a statement like `queryLike`. */
  async function untilWaiting(count: number, what: string, queryLike: string): Promise<void> {
    for (let waited = 0; waited <= 10_000; waited += 50) {
      const { rows } = await db.query<{ waiting: number }>(
        `SELECT count(*)::int AS waiting FROM pg_stat_activity
          WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE $1`,
        [queryLike],
      );
      if (rows[0]!.waiting >= count) return;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error(`${what} never waited for a lock`);
  }

  /** The stored message's row and the audit rows of it. */
  async function storedAndAudited(
    control: string,
  ): Promise<{ rows: { id: string; status: string; attempts: number }[]; audited: number }> {
    const { rows } = await db.query<{ id: string; status: string; attempts: number }>(
      'SELECT id, status, attempts FROM hl7_message WHERE control_id = $1',
      [control],
    );
    const audit = await db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM audit_event
        WHERE source = 'hl7' AND request_id = ANY($1::text[])`,
      [rows.map((row) => row.id)],
    );
    return { rows, audited: audit.rows[0]!.n };
  }

  it.each([
    ['refused (AR)', 'ADT^A28', 'D', 'rejected', 'AR'],
    ['ignored (HL7_IGNORE)', 'ZZZ^Z99', 'P', 'ignored', 'AA'],
  ])(
    'records a message %s reaching two instances at once once',
    async (_case, type, processingId, status, code) => {
      const tag = randomUUID().slice(0, 8);
      const message = [
        `MSH|^~\\&|ADT|HOSP|CV|CV|20250301100000||${type}|${tag}|${processingId}|2.5`,
        `PID|1||${tag}^^^HOSP&2.16.80&ISO^MR||Apart^Amy`,
      ].join('\r');
      // The first instance's outcome, once written, waits for the gate (its row lock held).
      await db.query(`CREATE FUNCTION test_slow_outcome() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF OLD.status = 'received' THEN PERFORM pg_advisory_xact_lock(${OUTCOME_GATE}); END IF;
          RETURN NEW;
        END $$`);
      await db.query(`CREATE TRIGGER test_slow_outcome BEFORE UPDATE ON hl7_message
        FOR EACH ROW EXECUTE FUNCTION test_slow_outcome()`);
      const toFirst = await MllpTestClient.connect(portOf(first));
      const toSecond = await MllpTestClient.connect(portOf(second));
      await db.query('SELECT pg_advisory_lock($1)', [OUTCOME_GATE]);
      let acks: string[];
      try {
        const firstAck = toFirst.exchange([message]);
        await untilWaiting(1, 'the first instance', '%hl7_message%');
        // The second has read the row as received, before the first's outcome commits.
        const secondAck = toSecond.exchange([message]);
        await untilWaiting(2, 'the second instance', '%hl7_message%');
        await db.query('SELECT pg_advisory_unlock($1)', [OUTCOME_GATE]);
        acks = [...(await firstAck), ...(await secondAck)];
      } finally {
        await db.query('SELECT pg_advisory_unlock_all()');
        await db.query('DROP TRIGGER test_slow_outcome ON hl7_message');
        await db.query('DROP FUNCTION test_slow_outcome()');
        toFirst.close();
        toSecond.close();
      }
      expect(acks.map((ack) => msaOf(ack).code)).toEqual([code, code]);
      const { rows, audited } = await storedAndAudited(tag);
      expect(rows.map(({ status, attempts }) => ({ status, attempts }))).toEqual([
        { status, attempts: 1 },
      ]);
      expect(audited).toBe(1);
    },
  );

  /**
   * Sends a message (AA), dismisses it, and has `work` reach its row while a transaction holds
   * it, which then deletes it as hl7:purge does: gone between being read and being locked.
   */
  async function purgedMeanwhile<T>(
    tag: string,
    work: (message: string, id: string) => Promise<T>,
  ): Promise<T> {
    const message = [
      `MSH|^~\\&|ADT|HOSP|CV|CV|20250301100000||ADT^A28|${tag}|P|2.5`,
      `PID|1||${tag}^^^HOSP&2.16.81&ISO^MR||Gone^Gil`,
    ].join('\r');
    const sender = await MllpTestClient.connect(portOf(first));
    const [ack] = await sender.exchange([message]);
    sender.close();
    expect(msaOf(ack!).code).toBe('AA');
    const { rows } = await db.query<{ id: string }>(
      `UPDATE hl7_message SET status = 'dismissed' WHERE control_id = $1 RETURNING id`,
      [tag],
    );
    const purging = new pg.Client({ connectionString: database.url });
    await purging.connect();
    try {
      await purging.query('BEGIN');
      await purging.query('SELECT 1 FROM hl7_message WHERE control_id = $1 FOR UPDATE', [tag]);
      const working = work(message, rows[0]!.id);
      // Caught here, so that it is not unhandled while the test waits; rethrown by the await below.
      working.catch(() => undefined);
      await untilWaiting(1, 'the second instance', '%hl7_message%FOR UPDATE%');
      await purging.query('DELETE FROM hl7_message WHERE control_id = $1', [tag]);
      await purging.query('COMMIT');
      return await working;
    } finally {
      await purging.end();
    }
  }

  it('stores a resend again when its stored copy was purged while it waited, then processes it', async () => {
    const tag = randomUUID().slice(0, 8);
    const [ack] = await purgedMeanwhile(tag, async (message) => {
      const sender = await MllpTestClient.connect(portOf(second));
      try {
        return await sender.exchange([message]);
      } finally {
        sender.close();
      }
    });
    expect(msaOf(ack!).code).toBe('AA');
    // Nothing is processed without its stored row: the resend is stored, processed and audited.
    const { rows, audited } = await storedAndAudited(tag);
    expect(rows.map(({ status, attempts }) => ({ status, attempts }))).toEqual([
      { status: 'processed', attempts: 1 },
    ]);
    expect(audited).toBe(1);
  });

  it('answers not found to a reprocess of a message purged while it waited', async () => {
    const tag = randomUUID().slice(0, 8);
    const reprocessed = purgedMeanwhile(tag, (_message, id) =>
      second.app.get(Hl7InboundService).reprocess(id),
    );
    await expect(reprocessed).rejects.toBeInstanceOf(AppError);
    await expect(reprocessed).rejects.toMatchObject({ status: 404 });
    expect((await storedAndAudited(tag)).rows).toEqual([]);
  });
});
