/**
 * npm run bench:search [-- --patients N] [--reuse DIR]: seeds N synthetic patients (default
 * 100,000) with two Observations each through the store (FhirService: validation, encryption,
 * index rows), then measures five searches through the HTTP API (client on its own thread) and
 * the same searches as direct SQL on the index tables, prepared and returning the page's rows (the
 * floor), and the commit of one search's audit row, which the API waits for and the floor does
 * not include. Prints a markdown table and writes JSON to bench/results/.
 * Not part of npm test: timings belong here, measured side by side in one run.
 */
import 'reflect-metadata';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { DataSource } from 'typeorm';
import { AuditTrail } from '../src/audit/audit-trail.js';
import { AuditRepository } from '../src/audit/audit.repository.js';
import type { AuthenticatedUser } from '../src/auth/authenticated-user.js';
import { BlindIndexer } from '../src/crypto/blind-index.js';
import { preparedQuery } from '../src/database/prepared-query.js';
import { FhirService } from '../src/fhir/fhir.service.js';
import { stringTerms, tokenTerms } from '../src/fhir/search/blind-terms.js';
import { blindField } from '../src/fhir/search/index-extractor.js';
import { benchToken, startBenchApp } from './bench-app.js';
import type { HttpWorkload } from './http-worker.js';
import { CONCURRENCY, percentiles, SAMPLES, timed, WARM_UP, type Stats } from './timing.js';
import { writeResults } from './results-file.js';

/** Distinct request URLs per workload: more than a run's throughput phase sends. */
const URLS = 20_000;

const args = process.argv.slice(2);
const PATIENTS = Number(args[args.indexOf('--patients') + 1] ?? 100_000) || 100_000;
// --reuse DIR keeps the cluster (and its synthetic data) in DIR: seeding 100,000 patients takes
// 17 to 35 minutes here, so a later run on the same DIR skips it and only measures.
const REUSE = args.includes('--reuse') ? args[args.indexOf('--reuse') + 1] : undefined;
const MRN = 'urn:oid:1.2.36.146.595.217.0.1';
const FAMILIES = ['Garcia', 'Nguyen', 'Okafor', 'Schmidt', 'Rossi', 'Kowalski', 'Haddad', 'Tanaka'];

async function main(): Promise<void> {
  const dir = REUSE ?? (await mkdtemp(join(tmpdir(), 'carevault-bench-')));
  const saved = REUSE ? await readSeeded(dir) : undefined;
  process.env['DATA_DIR'] = dir;
  // A synthetic-data key, kept beside the cluster only for --reuse runs.
  process.env['PHI_MASTER_KEY'] = saved?.key ?? randomBytes(32).toString('base64');
  process.env['LOG_LEVEL'] = 'silent';
  process.env['NODE_ENV'] = 'development';
  let serverTimes: number[] = [];
  const { app, url: base } = await startBenchApp((created) => {
    serverTimes = recordServerTimes(created);
  });
  const url = `${base}/fhir`;
  try {
    const seeded = saved ?? (await seed(app));
    if (REUSE && !saved) {
      await writeFile(
        join(dir, SEEDED_FILE),
        JSON.stringify({ ...seeded, key: process.env['PHI_MASTER_KEY'] }),
        { mode: 0o600 },
      );
    }
    const token = await benchToken(app, url.replace(/\/fhir$/, ''));
    const rows = await measure(app, url, token, seeded, serverTimes);
    await report(rows, seeded.seconds);
  } finally {
    await app.close();
    if (!REUSE) await rm(dir, { recursive: true, force: true });
  }
}

const SEEDED_FILE = 'bench-seeded.json';

async function readSeeded(dir: string): Promise<(Seeded & { key: string }) | undefined> {
  try {
    const saved = JSON.parse(await readFile(join(dir, SEEDED_FILE), 'utf8')) as Seeded & {
      key: string;
    };
    if (saved.mrns.length !== PATIENTS) {
      throw new Error(`${dir} holds ${saved.mrns.length} patients, not ${PATIENTS}`);
    }
    return saved;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

interface Seeded {
  mrns: string[];
  families: string[];
  patientIds: string[];
  seconds: number;
}

async function seed(app: NestFastifyApplication): Promise<Seeded> {
  const fhir = app.get(FhirService);
  const system: AuthenticatedUser = {
    id: 'bench',
    username: 'bench',
    roles: ['integration'],
    amr: [],
    authTime: 0,
  };
  const mrns: string[] = [];
  const families: string[] = [];
  const patientIds: string[] = [];
  const started = Date.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      for (let i = next++; i < PATIENTS; i = next++) {
        const mrn = `MRN-${i}`;
        const family = `${FAMILIES[i % FAMILIES.length]}${Math.floor(i / FAMILIES.length)}`;
        const year = 1930 + (i % 90);
        const patient = await fhir.create(system, 'Patient', {
          resourceType: 'Patient',
          identifier: [{ system: MRN, value: mrn }],
          name: [{ family, given: ['Alex'] }],
          birthDate: `${year}-0${1 + (i % 9)}-1${i % 10}`,
          gender: i % 2 ? 'female' : 'male',
        });
        for (let k = 0; k < 2; k++) {
          await fhir.create(system, 'Observation', {
            resourceType: 'Observation',
            status: 'final',
            code: { coding: [{ system: 'http://loinc.org', code: k ? '2339-0' : '8867-4' }] },
            subject: { reference: `Patient/${patient.id}` },
            effectiveDateTime: `202${k + 3}-0${1 + (i % 9)}-15T08:00:00Z`,
            valueQuantity: { value: 60 + (i % 40), unit: '/min' },
          });
        }
        mrns[i] = mrn;
        families[i] = family;
        patientIds[i] = patient.id;
        if (i % 1000 === 0) process.stderr.write(`\rSeeded ${i} patients`);
      }
    }),
  );
  const seconds = (Date.now() - started) / 1000;
  process.stderr.write(
    `\rSeeded ${PATIENTS} patients and ${PATIENTS * 2} observations in ${seconds.toFixed(0)} s\n`,
  );
  return { mrns, families, patientIds, seconds };
}

type Workload = {
  name: string;
  api: (i: number) => string;
  sql: (i: number) => [string, unknown[]];
};

/**
 * Server-side time of each request in order of completion (onRequest to onResponse): what the
 * service itself spends, without the client and the loopback hop.
 */
function recordServerTimes(app: NestFastifyApplication): number[] {
  const serverTimes: number[] = [];
  const started = new WeakMap<object, number>();
  const fastify = app.getHttpAdapter().getInstance();
  fastify.addHook('onRequest', (request, _reply, done) => {
    started.set(request, performance.now());
    done();
  });
  fastify.addHook('onResponse', (request, _reply, done) => {
    const start = started.get(request);
    if (start !== undefined) serverTimes.push(performance.now() - start);
    done();
  });
  return serverTimes;
}

async function measure(
  app: NestFastifyApplication,
  url: string,
  token: string,
  seeded: Seeded,
  serverTimes: number[],
): Promise<Row[]> {
  const data = app.get(DataSource);
  const blind = app.get(BlindIndexer);
  const hash = (type: string, param: string, term: string): string =>
    blind.compute(blindField(type, param), term);
  const pick = (i: number): number => (i * 7919) % PATIENTS;
  // The floor returns what a search must: a page of matching resources with their content.
  const columns = 'r.id, r.version_id, r.last_updated, r.content';
  const page = (conditions: string): string =>
    `SELECT ${columns} FROM resource r WHERE r.resource_type = $1 AND NOT r.deleted AND ${conditions} ORDER BY r.id LIMIT 21`;
  const blindExists = (n: number): string =>
    `EXISTS (SELECT 1 FROM search_blind b${n} WHERE b${n}.resource_type = r.resource_type AND b${n}.resource_id = r.id AND b${n}.param = $${n * 2} AND b${n}.hash = $${n * 2 + 1})`;
  const workloads: Workload[] = [
    {
      name: 'Patient?identifier=system|MRN',
      api: (i) =>
        `${url}/Patient?identifier=${encodeURIComponent(`${MRN}|${seeded.mrns[pick(i)]}`)}`,
      sql: (i) => [
        page(blindExists(1)),
        [
          'Patient',
          'identifier',
          hash('Patient', 'identifier', tokenTerms(MRN, seeded.mrns[pick(i)]!)[1]!),
        ],
      ],
    },
    {
      name: 'Patient?family=<prefix>',
      api: (i) => `${url}/Patient?family=${seeded.families[pick(i)]!.slice(0, 6)}`,
      sql: (i) => [
        page(blindExists(1)),
        [
          'Patient',
          'family',
          hash('Patient', 'family', `p:${stringTerms(seeded.families[pick(i)]!)[0]!.slice(2, 8)}`),
        ],
      ],
    },
    {
      name: 'Patient?family=…&birthdate=YYYY',
      api: (i) =>
        `${url}/Patient?family=${seeded.families[pick(i)]}&birthdate=${1930 + (pick(i) % 90)}`,
      sql: (i) => [
        page(`${blindExists(1)} AND ${blindExists(2)}`),
        [
          'Patient',
          'family',
          hash('Patient', 'family', stringTerms(seeded.families[pick(i)]!).at(-1)!),
          'birthdate',
          hash('Patient', 'birthdate', `y:${1930 + (pick(i) % 90)}`),
        ],
      ],
    },
    {
      name: 'Observation?subject=…&code=…&date=ge…',
      api: (i) =>
        `${url}/Observation?subject=Patient/${seeded.patientIds[pick(i)]}&code=http://loinc.org|8867-4&date=ge2023-01-01`,
      sql: (i) => [
        page(
          `EXISTS (SELECT 1 FROM search_reference f WHERE f.resource_type = r.resource_type AND f.resource_id = r.id AND f.param = 'subject' AND f.target_type = 'Patient' AND f.target_id = $2)
           AND EXISTS (SELECT 1 FROM search_token t WHERE t.resource_type = r.resource_type AND t.resource_id = r.id AND t.param = 'code' AND t.system = 'http://loinc.org' AND t.code = '8867-4')
           AND EXISTS (SELECT 1 FROM search_date d WHERE d.resource_type = r.resource_type AND d.resource_id = r.id AND d.param = 'date' AND d.high > '2023-01-01'::timestamptz)`,
        ),
        ['Observation', seeded.patientIds[pick(i)]],
      ],
    },
    {
      name: 'Observation?subject=…&_include=Observation:subject',
      api: (i) =>
        `${url}/Observation?subject=Patient/${seeded.patientIds[pick(i)]}&_include=Observation:subject`,
      sql: (i) => [
        `WITH page AS (${page(
          `EXISTS (SELECT 1 FROM search_reference f WHERE f.resource_type = r.resource_type AND f.resource_id = r.id AND f.param = 'subject' AND f.target_type = 'Patient' AND f.target_id = $2)`,
        )}) SELECT * FROM page UNION ALL SELECT ${columns} FROM resource r WHERE (r.resource_type, r.id) IN (SELECT t.target_type, t.target_id FROM search_reference t WHERE t.resource_type = 'Observation' AND t.resource_id IN (SELECT id FROM page) AND t.param = 'subject') AND NOT r.deleted`,
        ['Observation', seeded.patientIds[pick(i)]],
      ],
    },
  ];
  const results = [];
  for (const workload of workloads) {
    serverTimes.length = 0;
    const api = await timedHttp(workload.name, token, workload.api);
    // Sequential requests complete in order: after the warm-up come the latency samples.
    const server = percentiles(serverTimes.slice(WARM_UP, WARM_UP + SAMPLES));
    // Prepared, as the service prepares its search statements: the floor is the best SQL.
    const sql = await timed(async (i) => {
      const [text, params] = workload.sql(i);
      const rows = await preparedQuery(data.manager, text, params);
      if (rows.length === 0) throw new Error(`${workload.name}: the SQL floor found nothing`);
    });
    results.push({ name: workload.name, api, server, sql, audit: await auditCommit(app) });
  }
  return results;
}

/**
 * The commit of one search's audit row, through the service's own audit path: the API waits for
 * it before it answers, and the SQL floor does not include it. Replays the row the last search
 * wrote, with a new id.
 */
async function auditCommit(app: NestFastifyApplication): Promise<Stats> {
  const [last] = await app.get(AuditRepository).search({ actions: ['search'], limit: 1 });
  if (!last) throw new Error('No search was audited');
  const trail = app.get(AuditTrail);
  // A new entry with the same content: the trail links it into the chain afresh.
  return timed(() => trail.record({ ...last, id: randomUUID(), recordedAt: new Date() }));
}

/** The API side of a workload, timed by a client on its own thread. */
function timedHttp(name: string, token: string, url: (i: number) => string): Promise<Stats> {
  const urls = Array.from({ length: URLS }, (_, i) => url(i));
  const worker = new Worker(new URL('./http-worker.js', import.meta.url), {
    workerData: { name, token, urls } satisfies HttpWorkload,
  });
  return new Promise<Stats>((resolve, reject) => {
    worker.once('message', (stats: Stats) => resolve(stats));
    worker.once('error', reject);
    worker.once('exit', (code) => {
      if (code !== 0) reject(new Error(`${name}: the HTTP client exited with ${code}`));
    });
  });
}

interface Row {
  name: string;
  api: Stats;
  /** Latency inside the service for the same sequential requests. */
  server: Omit<Stats, 'perSecond'>;
  sql: Stats;
  /** One search's audit row committed on its own. */
  audit: Stats;
}

async function report(rows: Row[], seedSeconds: number): Promise<void> {
  const ms = (value: number): string => value.toFixed(2);
  const lines = [
    `Search benchmark: ${PATIENTS} patients, ${PATIENTS * 2} observations (seeded in ${seedSeconds.toFixed(0)} s), ${SAMPLES} sequential requests per latency figure, ${CONCURRENCY} concurrent for 5 s for throughput.`,
    '',
    '| Search | API p50 ms | p95 | p99 | API req/s | server p50 ms | SQL p50 ms | p95 | p99 | SQL q/s | audit p50 ms | API/SQL p50 | API/(SQL+audit) |',
    '| --- | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: |',
    ...rows.map(
      ({ name, api, server, sql, audit }) =>
        `| ${name} | ${ms(api.p50)} | ${ms(api.p95)} | ${ms(api.p99)} | ${api.perSecond.toFixed(0)} | ${ms(server.p50)} | ${ms(sql.p50)} | ${ms(sql.p95)} | ${ms(sql.p99)} | ${sql.perSecond.toFixed(0)} | ${ms(audit.p50)} | ${(api.p50 / sql.p50).toFixed(1)}× | ${(api.p50 / (sql.p50 + audit.p50)).toFixed(1)}× |`,
    ),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  await writeResults('search', { patients: PATIENTS, seedSeconds, rows });
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
