import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import {
  cliUserToken,
  faultEnv,
  FAULT_SYSTEM,
  labReport,
  patientIdOf,
  patientTransaction,
} from '../support/faults.js';
import { authorizedHttp } from '../support/http.js';
import { msaOf, MllpTestClient } from '../support/mllp.js';
import { BUILT, mllpPortOf, runNode, startService } from '../support/process.js';
import { createScratchDatabase, type ScratchDatabase } from '../support/scratch-database.js';

const OBSERVATIONS = 5;
const HTTP_CLIENTS = 4;
const REPORTS = 400;

describe('SIGKILL during a stream of transactions and HL7 messages', () => {
  let database: ScratchDatabase;
  let dataDir: string;
  let db: pg.Client;

  beforeAll(async () => {
    database = await createScratchDatabase();
    dataDir = await mkdtemp(join(tmpdir(), 'carevault-fault-kill-'));
    db = new pg.Client({ connectionString: database.url });
    await db.connect();
  });

  afterAll(async () => {
    await db.end();
    await database.drop();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('keeps every acknowledged write, shows no partial one, and the audit chain verifies', async () => {
    const env = faultEnv(database.url, dataDir);
    const first = await startService(env);
    const api = authorizedHttp(await cliUserToken(env, first.url));

    // HTTP: clients send transactions back to back and note each one answered 200.
    const acknowledged = new Map<string, string>(); // tag -> Patient id
    const sent = new Set<string>();
    let killed = false;
    const client = async (n: number): Promise<void> => {
      for (let i = 0; !killed; i++) {
        const tag = `TX-${n}-${i}`;
        sent.add(tag);
        try {
          const res = await api('POST', `${first.url}/fhir`, {
            body: patientTransaction(tag, OBSERVATIONS),
          });
          if (res.status === 200) acknowledged.set(tag, patientIdOf(res.body));
          else if (!killed) throw new Error(`transaction answered ${res.status}: ${res.text}`);
        } catch (error) {
          if (!killed) throw error;
        }
      }
    };
    const clients = Array.from({ length: HTTP_CLIENTS }, (_, n) => client(n));
    // HL7: one connection with the whole stream pipelined.
    const sender = await MllpTestClient.connect(mllpPortOf(first));
    await sender.send(Array.from({ length: REPORTS }, (_, i) => labReport(`ORU-${i}`)));

    // Kill once both streams are well under way, with more of each in flight.
    const deadline = Date.now() + 60_000;
    while ((acknowledged.size < 20 || sender.acks.length < 20) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    killed = true;
    await first.stop('SIGKILL');
    await Promise.all(clients);
    const acked = sender.acks.map((ack) => msaOf(ack));
    sender.close();
    expect(acknowledged.size).toBeGreaterThanOrEqual(20);
    expect(acked.length).toBeGreaterThanOrEqual(20);
    expect(acked.length).toBeLessThan(REPORTS);
    for (const ack of acked) expect(ack.code).toBe('AA');

    // Straight from the database, before anything restarts: every ACKed message is processed,
    // and what committed is whole (each report with its results, each transaction with all of
    // its entries), so the counts add up exactly.
    const { rows: stored } = await db.query<{ control_id: string; status: string }>(
      'SELECT control_id, status FROM hl7_message WHERE control_id = ANY($1)',
      [acked.map((ack) => ack.controlId)],
    );
    expect(stored).toHaveLength(acked.length);
    for (const row of stored) expect(row.status).toBe('processed');
    const counts = Object.fromEntries(
      (
        await db.query<{ resource_type: string; n: string }>(
          'SELECT resource_type, count(*) AS n FROM resource GROUP BY resource_type',
        )
      ).rows.map((row) => [row.resource_type, Number(row.n)]),
    );
    const processed = Number(
      (
        await db.query<{ n: string }>(
          `SELECT count(*) AS n FROM hl7_message WHERE status = 'processed'`,
        )
      ).rows[0]!.n,
    );
    const reports = counts['DiagnosticReport'] ?? 0;
    const transactions = (counts['Patient'] ?? 0) - reports;
    expect(reports).toBe(processed);
    expect(transactions).toBeGreaterThanOrEqual(acknowledged.size);
    // At most one transaction per client was in flight at the kill.
    expect(transactions).toBeLessThanOrEqual(acknowledged.size + HTTP_CLIENTS);
    expect(counts['Observation']).toBe(OBSERVATIONS * (reports + transactions));

    // After a restart, every acknowledged transaction reads back whole through the API.
    const second = await startService(env);
    try {
      for (const [tag, id] of acknowledged) {
        const found = await api(
          'GET',
          `${second.url}/fhir/Patient?identifier=${encodeURIComponent(`${FAULT_SYSTEM}|${tag}`)}`,
        );
        expect(
          found.body.entry?.map((entry: { resource: { id: string } }) => entry.resource.id),
        ).toEqual([id]);
        const results = await api(
          'GET',
          `${second.url}/fhir/Observation?subject=Patient/${id}&_summary=count`,
        );
        expect(results.body.total).toBe(OBSERVATIONS);
      }
      // A transaction that was in flight is all there or not there at all.
      for (const tag of [...sent].filter((tag) => !acknowledged.has(tag))) {
        const found = await api(
          'GET',
          `${second.url}/fhir/Patient?identifier=${encodeURIComponent(`${FAULT_SYSTEM}|${tag}`)}`,
        );
        for (const entry of found.body.entry ?? []) {
          const results = await api(
            'GET',
            `${second.url}/fhir/Observation?subject=Patient/${entry.resource.id}&_summary=count`,
          );
          expect(results.body.total).toBe(OBSERVATIONS);
        }
      }
    } finally {
      await second.stop('SIGTERM');
    }
    const verified = await runNode(BUILT.cli, ['audit:verify'], env);
    expect(verified.stdout).toContain('Audit chain verified');
    expect(verified.code).toBe(0);
  }, 180_000);
});
