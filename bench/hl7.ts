/**
 * npm run bench:hl7 [-- --seconds 15] [--connections 1,8,32] [--subscriptions N]: ORU^R01
 * messages (1 PID, 1 OBR, 10 OBX) through the MLLP
 * listener of a CareVault on a fresh embedded PostgreSQL, each acknowledged only after its
 * Patient, DiagnosticReport and Observations commit. 1, 8 and 32 connections, each sending its
 * next message when the last ACK arrives; reports messages/s and ACK latency (p50, p95, p99),
 * with every ACK checked to be AA. With --subscriptions, N rest-hook Subscriptions watch
 * Observations of codes the results do not have: what matching each write costs, with no
 * delivery. Prints a markdown table and writes JSON to bench/results/.
 * Not part of npm test.
 */
import 'reflect-metadata';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataSource } from 'typeorm';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { benchToken, startBenchApp } from './bench-app.js';
import { INDEX_TABLES } from '../src/fhir/search/search-index.repository.js';
import { FhirService } from '../src/fhir/fhir.service.js';
import { HL7_USER } from '../src/hl7/hl7-user.js';
import { encodeFrame, MllpDecoder } from '../src/hl7/mllp/mllp-decoder.js';
import { MllpListener } from '../src/hl7/mllp/mllp-listener.js';
import { percentiles } from './timing.js';
import { labPatient, labResult } from './workloads.js';
import { writeResults } from './results-file.js';

const args = process.argv.slice(2);
const SECONDS = Number(args[args.indexOf('--seconds') + 1] ?? 15) || 15;
const WARM_UP_SECONDS = 3;
const CONNECTIONS = args.includes('--connections')
  ? args[args.indexOf('--connections') + 1]!.split(',').map(Number)
  : [1, 8, 32];
const SUBSCRIPTIONS = args.includes('--subscriptions')
  ? Number(args[args.indexOf('--subscriptions') + 1])
  : 0;
/** Never called: the Subscriptions' criteria match nothing the messages bring. */
const HOOKS = 'http://127.0.0.1:9/bench-hooks/';
/** Distinct patients the messages are about: known ones (seeded first), as a lab reports on. */
const PATIENTS = 2000;

let sequence = 0;
const tag = `B${Date.now().toString(36)}`;
const oru = (): Buffer => labResult(tag, sequence++, PATIENTS);

interface Result {
  connections: number;
  messagesPerSecond: number;
  p50: number;
  p95: number;
  p99: number;
  messages: number;
}

/** One connection: send, wait for the ACK, repeat until `until`; latencies after `from`. */
async function sender(
  port: number,
  from: number,
  until: number,
  latencies: number[],
): Promise<number> {
  const socket = connect(port, '127.0.0.1');
  socket.setNoDelay(true);
  await new Promise((resolve) => socket.once('connect', resolve));
  const decoder = new MllpDecoder(1 << 20);
  let waiting: ((ack: string) => void) | undefined;
  socket.on('data', (chunk: Buffer) => {
    for (const event of decoder.push(chunk)) {
      if (event.kind === 'frame') waiting?.(event.payload.toString('utf8'));
    }
  });
  let counted = 0;
  while (performance.now() < until) {
    const started = performance.now();
    const ack = await new Promise<string>((resolve) => {
      waiting = resolve;
      socket.write(encodeFrame(oru()));
    });
    if (!/\rMSA\|AA\|/.test(ack)) throw new Error(`not AA: ${ack.replace(/\r/g, '\n')}`);
    if (started >= from) {
      latencies.push(performance.now() - started);
      counted++;
    }
  }
  socket.destroy();
  return counted;
}

async function run(port: number, connections: number): Promise<Result> {
  const start = performance.now();
  const from = start + WARM_UP_SECONDS * 1000;
  const until = from + SECONDS * 1000;
  const latencies: number[] = [];
  const counts = await Promise.all(
    Array.from({ length: connections }, () => sender(port, from, until, latencies)),
  );
  const messages = counts.reduce((sum, count) => sum + count, 0);
  return {
    connections,
    messagesPerSecond: messages / SECONDS,
    ...percentiles(latencies),
    messages,
  };
}

/**
 * The patients the lab reports on, registered beforehand (as an admission feed would have
 * done), then ANALYZE, which autovacuum does within a minute on a running system: without it,
 * plans made while the tables were empty would scan what has since grown.
 */
async function seedPatients(fhir: FhirService, data: DataSource): Promise<void> {
  for (let start = 0; start < PATIENTS; start += 500) {
    await fhir.createMany(
      HL7_USER,
      Array.from({ length: Math.min(500, PATIENTS - start) }, (_, i) => ({
        type: 'Patient',
        body: labPatient(start + i),
      })),
    );
  }
  await data.query('ANALYZE');
}

/** Subscriptions on Observation, as a ward dashboard or a registry would hold, through the API. */
async function watch(app: NestFastifyApplication, url: string, count: number): Promise<void> {
  const token = await benchToken(app, url);
  for (let i = 0; i < count; i++) {
    const res = await fetch(`${url}/fhir/Subscription`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/fhir+json' },
      body: JSON.stringify({
        resourceType: 'Subscription',
        status: 'requested',
        reason: 'benchmark',
        criteria: `Observation?code=http://loinc.org|bench-unwatched-${i}`,
        channel: { type: 'rest-hook', endpoint: `${HOOKS}${i}` },
      }),
    });
    if (res.status !== 201) throw new Error(`Subscription not created: ${await res.text()}`);
  }
}

/** Rows in every table a message writes to. */
async function rowCount(data: DataSource): Promise<number> {
  const tables = ['resource', 'resource_history', ...INDEX_TABLES, 'hl7_message', 'audit_event'];
  const [row] = await data.query<{ n: number }[]>(
    `SELECT (${tables.map((table) => `(SELECT count(*) FROM "${table}")`).join(' + ')})::int AS n`,
  );
  return row!.n;
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'carevault-bench-hl7-'));
  process.env['DATA_DIR'] = dir;
  process.env['PHI_MASTER_KEY'] ??= randomBytes(32).toString('base64');
  process.env['LOG_LEVEL'] = 'silent';
  process.env['NODE_ENV'] = 'development';
  if (SUBSCRIPTIONS > 0) process.env['SUBSCRIPTION_ENDPOINTS'] = HOOKS;
  const { app, url } = await startBenchApp();
  try {
    const port = app.get(MllpListener).address()!.port;
    await seedPatients(app.get(FhirService), app.get(DataSource));
    await watch(app, url, SUBSCRIPTIONS);
    const data = app.get(DataSource);
    const rowsBefore = await rowCount(data);
    const results: Result[] = [];
    for (const connections of CONNECTIONS) {
      results.push(await run(port, connections));
      process.stderr.write(`${connections} connection(s) done\n`);
    }
    // What each message costs the database, warm-ups included: resource rows, versions, index
    // rows, the stored message and its audit row.
    const processed = (
      await data.query<{ n: number }[]>(
        `SELECT count(*)::int AS n FROM hl7_message WHERE status = 'processed'`,
      )
    )[0]!.n;
    const rowsPerMessage = ((await rowCount(data)) - rowsBefore) / processed;
    const ms = (value: number): string => value.toFixed(2);
    const lines = [
      `HL7 benchmark: ORU^R01 (1 PID, 1 OBR, 10 OBX) over MLLP, ACK after commit, ${WARM_UP_SECONDS} s warm-up then ${SECONDS} s per row, ${PATIENTS} patients, ${SUBSCRIPTIONS} Subscriptions on Observation.`,
      '',
      '| Connections | messages/s | p50 ms | p95 ms | p99 ms | messages |',
      '| --: | --: | --: | --: | --: | --: |',
      ...results.map(
        (r) =>
          `| ${r.connections} | ${r.messagesPerSecond.toFixed(0)} | ${ms(r.p50)} | ${ms(r.p95)} | ${ms(r.p99)} | ${r.messages} |`,
      ),
      '',
      `Rows written per message: ${rowsPerMessage.toFixed(0)}.`,
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
    await writeResults('hl7', {
      seconds: SECONDS,
      subscriptions: SUBSCRIPTIONS,
      rowsPerMessage,
      results,
    });
  } finally {
    await app.close();
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
