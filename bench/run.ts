/**
 * npm run bench [-- --seconds 30 --warm-up 10 --repetitions 3 --connections 1,16,64
 *                  --workloads W1,W2,W3a,W3b,W4a]
 *
 * The FHIR workloads of the benchmark suite against CareVault with everything on (validation,
 * encryption, blind indexes, audit), on a fresh embedded PostgreSQL seeded with patients:
 *   W1 create Patient (about 1 KB, 5 PHI fields), W2 read Patient by random id,
 *   W3a search by identifier, W3b search by family prefix,
 *   W4a transaction Bundle of 1 Patient and 10 Observations.
 * The load comes from autocannon in a process of its own (bench/load-client.ts). Each cell is
 * the median of the repetitions, which run interleaved (every workload once, then again).
 * Prints a markdown table with the issue's targets and writes JSON to bench/results/.
 * Not part of npm test. The HL7 workload (W5) is `npm run bench:hl7`. `--profile <file>` writes
 * a CPU profile of the service over the measured runs.
 */
import 'reflect-metadata';
import { execFile } from 'node:child_process';
import { Session } from 'node:inspector';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { DataSource } from 'typeorm';
import { FhirService } from '../src/fhir/fhir.service.js';
import { HL7_USER } from '../src/hl7/hl7-user.js';
import { benchToken, startBenchApp } from './bench-app.js';
import { median } from './timing.js';
import type { LoadResult, LoadSpec } from './load-client.js';

const run = promisify(execFile);
const args = process.argv.slice(2);
const option = (name: string, fallback: string): string =>
  args.includes(`--${name}`) ? args[args.indexOf(`--${name}`) + 1]! : fallback;
const SECONDS = Number(option('seconds', '30'));
const WARM_UP = Number(option('warm-up', '10'));
const REPETITIONS = Number(option('repetitions', '3'));
const CONNECTIONS = option('connections', '1,16,64').split(',').map(Number);
const WORKLOADS = option('workloads', 'W1,W2,W3a,W3b,W4a').split(',');
const PATIENTS = 2000;
const SYSTEM = 'urn:oid:2.16.840.1.113883.19.5';

/** A Patient of about 1 KB with five kinds of PHI: identifier, name, birth date, phone, address. */
function patient(n: string): Record<string, unknown> {
  return {
    resourceType: 'Patient',
    identifier: [
      {
        system: SYSTEM,
        value: `MRN-${n}`,
        type: {
          coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'MR' }],
        },
      },
    ],
    active: true,
    name: [{ use: 'official', family: `Family${n}`, given: ['Alexandra', 'Marie'] }],
    telecom: [
      { system: 'phone', value: '+1 555 010 0199', use: 'home' },
      { system: 'email', value: `patient${n}@example.org` },
    ],
    gender: 'female',
    birthDate: '1970-01-31',
    address: [
      {
        use: 'home',
        line: ['1234 Evergreen Terrace', 'Apartment 56'],
        city: 'Springfield',
        state: 'IL',
        postalCode: '62701',
        country: 'US',
      },
    ],
    maritalStatus: {
      coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-MaritalStatus', code: 'M' }],
    },
    communication: [
      { language: { coding: [{ system: 'urn:ietf:bcp:47', code: 'en-US' }] }, preferred: true },
    ],
  };
}

function transaction(n: string): Record<string, unknown> {
  const patientUrl = `urn:uuid:${randomUUID()}`;
  return {
    resourceType: 'Bundle',
    type: 'transaction',
    entry: [
      { fullUrl: patientUrl, resource: patient(n), request: { method: 'POST', url: 'Patient' } },
      ...Array.from({ length: 10 }, (_, i) => ({
        resource: {
          resourceType: 'Observation',
          status: 'final',
          code: { coding: [{ system: 'http://loinc.org', code: `2345-${i}` }] },
          subject: { reference: patientUrl },
          effectiveDateTime: '2024-01-01T08:30:00Z',
          valueQuantity: {
            value: 4 + i / 10,
            unit: 'mmol/L',
            system: 'http://unitsofmeasure.org',
            code: 'mmol/L',
          },
        },
        request: { method: 'POST', url: 'Observation' },
      })),
    ],
  };
}

interface Workload {
  name: string;
  what: string;
  method: 'GET' | 'POST';
  paths: string[];
  bodies?: string[];
  /** The issue's target on this machine, when it sets one. */
  target?: { perSecond: number; p99?: number };
}

/** One autocannon run in a child process; the spec goes through a file (bodies are large). */
async function load(dir: string, spec: LoadSpec): Promise<LoadResult> {
  const client = fileURLToPath(new URL('./load-client.js', import.meta.url));
  const file = join(dir, 'load-spec.json');
  await writeFile(file, JSON.stringify(spec));
  const { stdout } = await run(process.execPath, [client, file], { maxBuffer: 1 << 20 });
  return JSON.parse(stdout) as LoadResult;
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'carevault-bench-'));
  process.env['DATA_DIR'] = dir;
  process.env['PHI_MASTER_KEY'] ??= randomBytes(32).toString('base64');
  process.env['LOG_LEVEL'] = 'silent';
  process.env['NODE_ENV'] = 'development';
  process.env['RATE_LIMIT_PER_MINUTE'] = '1000000';
  const { app, url } = await startBenchApp();
  try {
    const ids = (
      await app.get(FhirService).createMany(
        HL7_USER,
        Array.from({ length: PATIENTS }, (_, i) => ({
          type: 'Patient',
          body: patient(String(i)),
        })),
      )
    ).map((created) => created.id);
    await app.get(DataSource).query('ANALYZE');
    const token = await benchToken(app, url);
    const pick = (count: number) => Array.from({ length: count }, (_, i) => i);
    const all: Workload[] = [
      {
        name: 'W1',
        what: 'create Patient',
        method: 'POST',
        paths: ['/fhir/Patient'],
        bodies: pick(5000).map((i) => JSON.stringify(patient(`w1-${i}`))),
        target: { perSecond: 3000, p99: 30 },
      },
      {
        name: 'W2',
        what: 'read Patient',
        method: 'GET',
        paths: ids.map((id) => `/fhir/Patient/${id}`),
        target: { perSecond: 3000, p99: 25 },
      },
      {
        name: 'W3a',
        what: 'search by identifier',
        method: 'GET',
        paths: pick(PATIENTS).map(
          (i) => `/fhir/Patient?identifier=${encodeURIComponent(`${SYSTEM}|MRN-${i}`)}`,
        ),
        target: { perSecond: 2000 },
      },
      {
        name: 'W3b',
        what: 'search by family prefix',
        method: 'GET',
        // Family1 to Family9 (about 1,100 matches each): the first page of 20.
        paths: pick(9).map((i) => `/fhir/Patient?family=Family${i + 1}1`),
      },
      {
        name: 'W4a',
        what: 'transaction, 1 Patient + 10 Observations',
        method: 'POST',
        paths: ['/fhir'],
        bodies: pick(1000).map((i) => JSON.stringify(transaction(`w4-${i}`))),
      },
    ];
    const workloads = all.filter((workload) => WORKLOADS.includes(workload.name));
    const origin = url;
    const headers = {
      authorization: `Bearer ${token}`,
      'content-type': 'application/fhir+json',
      accept: 'application/fhir+json',
    };
    const profiler = PROFILE ? await startProfile() : undefined;
    const results = new Map<string, LoadResult[]>();
    for (let rep = 1; rep <= REPETITIONS; rep++) {
      for (const workload of workloads) {
        for (const connections of CONNECTIONS) {
          const result = await load(dir, {
            origin,
            method: workload.method,
            paths: workload.paths,
            ...(workload.bodies ? { bodies: workload.bodies } : {}),
            headers,
            connections,
            warmUpSeconds: WARM_UP,
            seconds: SECONDS,
          });
          const key = `${workload.name}@${connections}`;
          results.set(key, [...(results.get(key) ?? []), result]);
          process.stderr.write(
            `rep ${rep} ${key}: ${result.perSecond.toFixed(0)}/s p99 ${result.p99.toFixed(1)} ms, ${result.errors} errors${result.firstErrorStatus ? ` (first ${result.firstErrorStatus})` : ''}\n`,
          );
        }
      }
    }
    if (profiler) await writeFile(PROFILE!, JSON.stringify(await profiler()));
    const rows = workloads.flatMap((workload) =>
      CONNECTIONS.map((connections) => {
        const runs = results.get(`${workload.name}@${connections}`)!;
        return {
          workload: workload.name,
          what: workload.what,
          connections,
          perSecond: median(runs.map((r) => r.perSecond)),
          p50: median(runs.map((r) => r.p50)),
          p95: median(runs.map((r) => r.p95)),
          p99: median(runs.map((r) => r.p99)),
          errors: runs.reduce((sum, r) => sum + r.errors, 0),
          target: workload.target,
        };
      }),
    );
    const ms = (value: number): string => value.toFixed(1);
    const target = (row: (typeof rows)[number]): string =>
      row.target
        ? `≥ ${row.target.perSecond}/s${row.target.p99 ? `, p99 < ${row.target.p99} ms` : ''}`
        : '';
    const table = [
      `CareVault, everything on; ${CPUS} CPUs shared by the service, PostgreSQL and the load client (no pinning); ${WARM_UP} s warm-up, ${SECONDS} s measured, median of ${REPETITIONS} interleaved runs; only 2xx count.`,
      '',
      '| Workload | Connections | req/s | p50 ms | p95 ms | p99 ms | errors | target |',
      '| --- | --: | --: | --: | --: | --: | --: | --- |',
      ...rows.map(
        (row) =>
          `| ${row.workload} ${row.what} | ${row.connections} | ${row.perSecond.toFixed(0)} | ${ms(row.p50)} | ${ms(row.p95)} | ${ms(row.p99)} | ${row.errors} | ${target(row)} |`,
      ),
    ].join('\n');
    process.stdout.write(`\n${table}\n`);
    const out = join(process.cwd(), 'bench', 'results');
    await mkdir(out, { recursive: true });
    const file = join(out, `bench-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
    await writeFile(
      file,
      JSON.stringify(
        { seconds: SECONDS, warmUp: WARM_UP, repetitions: REPETITIONS, rows, runs: [...results] },
        null,
        2,
      ),
    );
    process.stderr.write(`Wrote ${file}\n`);
  } finally {
    await app.close();
    await rm(dir, { recursive: true, force: true });
  }
}

const CPUS = cpus().length;

/**
 * --profile <file>: a CPU profile of the service's process over the measured runs only (not
 * start-up or seeding), for chrome://inspect or speedscope. Returns the function that stops it.
 */
const PROFILE = args.includes('--profile') ? option('profile', '') : undefined;

async function startProfile(): Promise<() => Promise<object>> {
  const session = new Session();
  session.connect();
  const post = (method: string): Promise<unknown> =>
    new Promise((resolve, reject) =>
      session.post(method, (error, result) => (error ? reject(error) : resolve(result))),
    );
  await post('Profiler.enable');
  await post('Profiler.start');
  return async () => ((await post('Profiler.stop')) as { profile: object }).profile;
}

main().catch((error: unknown) => {
  process.stderr.write(`${String(error)}\n`);
  process.exitCode = 1;
});
