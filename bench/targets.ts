/**
 * What `npm run bench` measures, started side by side on one embedded PostgreSQL, each with a
 * database of its own, seeded alike:
 *   carevault: everything on (validation, encryption, blind indexes, audit);
 *   insecure:  the same service with PHI encryption and audit writes switched off (benchmark-only
 *              switches the service refuses in production);
 *   baseline:  bench/baseline, Fastify and `pg` running the same SQL with no framework.
 */
import { randomBytes } from 'node:crypto';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import pg from 'pg';
import { DataSource } from 'typeorm';
import { createDataSource } from '../src/database/database-options.js';
import { MllpListener } from '../src/hl7/mllp/mllp-listener.js';
import { startBaseline } from './baseline/index.js';
import { benchSession, startBenchApp } from './bench-app.js';
import { labPatient, patient, syntheaBundles } from './workloads.js';

export const TARGET_NAMES = ['carevault', 'insecure', 'baseline'] as const;
export type TargetName = (typeof TARGET_NAMES)[number];

export const TARGET_LABELS: Record<TargetName, string> = {
  carevault: 'CareVault',
  insecure: 'CareVault, encryption and audit off',
  baseline: 'Fastify + pg baseline',
};

export interface Target {
  name: TargetName;
  url: string;
  /** A bearer token, fresh enough for the next run. */
  token: () => Promise<string>;
  /** Seeded Patient ids, for reads. */
  ids: string[];
  /** The MLLP listener (CareVault only). */
  mllpPort?: number;
  /** The Synthea Organizations and Practitioners are loaded (CareVault only). */
  synthea: boolean;
}

export const PATIENTS = 2000;
export const LAB_PATIENTS = 500;

/**
 * Starts the targets named, in that order, on the embedded PostgreSQL that a first CareVault
 * (everything on: the `carevault` target when it is named) starts. Each is seeded with PATIENTS
 * patients through its own API (and, for CareVault, the lab's patients and the Synthea shared
 * bundles), then ANALYZEd. `close` stops all of them.
 */
export async function startTargets(
  names: readonly TargetName[],
): Promise<{ targets: Target[]; close: () => Promise<void> }> {
  process.env['PHI_MASTER_KEY'] ??= randomBytes(32).toString('base64');
  const host = await startBenchApp();
  const serverUrl = (host.app.get(DataSource).options as { url: string }).url;
  const closers: (() => Promise<void>)[] = [() => host.app.close()];
  const close = async (): Promise<void> => {
    for (const closer of closers.reverse()) await closer();
  };
  const targets: Target[] = [];
  try {
    for (const name of names) {
      if (name === 'carevault') {
        targets.push(await careVault(name, host.app, host.url, serverUrl));
      } else {
        const { target, close: closeTarget } = await onDatabaseOf(name, serverUrl);
        closers.push(closeTarget);
        targets.push(target);
      }
      process.stderr.write(`${TARGET_LABELS[name]}: started and seeded\n`);
    }
  } catch (error) {
    await close();
    throw error;
  }
  return { targets, close };
}

async function careVault(
  name: TargetName,
  app: NestFastifyApplication,
  url: string,
  databaseUrl: string,
): Promise<Target> {
  const token = await benchSession(app, url);
  const ids = await seed(url, await token(), true);
  await analyze(databaseUrl);
  return {
    name,
    url,
    token,
    ids,
    mllpPort: app.get(MllpListener).address()!.port,
    synthea: true,
  };
}

/** A target on a new database of the first one's server. */
async function onDatabaseOf(
  name: TargetName,
  serverUrl: string,
): Promise<{ target: Target; close: () => Promise<void> }> {
  const databaseUrl = await createDatabase(serverUrl, `bench_${name}`);
  if (name === 'baseline') {
    const baseline = await startBaseline({
      databaseUrl,
      phiMasterKey: process.env['PHI_MASTER_KEY']!,
    });
    const ids = await seed(baseline.url, baseline.token, false);
    await analyze(databaseUrl);
    const target = {
      name,
      url: baseline.url,
      token: () => Promise.resolve(baseline.token),
      ids,
      synthea: false,
    };
    return { target, close: () => baseline.close() };
  }
  const switches = {
    DATABASE_URL: databaseUrl,
    AUDIT_BENCHMARK_SKIP: 'true',
    PHI_ENCRYPTION_BENCHMARK_SKIP: 'true',
  };
  Object.assign(process.env, switches);
  try {
    const { app, url } = await startBenchApp();
    return { target: await careVault(name, app, url, databaseUrl), close: () => app.close() };
  } finally {
    for (const key of Object.keys(switches)) delete process.env[key];
  }
}

async function createDatabase(serverUrl: string, name: string): Promise<string> {
  const client = new pg.Client({ connectionString: serverUrl });
  await client.connect();
  try {
    await client.query(`DROP DATABASE IF EXISTS ${name}`);
    await client.query(`CREATE DATABASE ${name}`);
  } finally {
    await client.end();
  }
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  const dataSource = await createDataSource(url.toString()).initialize();
  await dataSource.runMigrations({ transaction: 'each' });
  await dataSource.destroy();
  return url.toString();
}

/**
 * Statistics for the seeded tables, which autovacuum gathers within a minute on a running
 * system: without them, plans cached while the tables were empty scan what has since grown.
 */
async function analyze(databaseUrl: string): Promise<void> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  await client.query('ANALYZE').finally(() => client.end());
}

/** PATIENTS patients through the API, 16 at a time; with `lab`, the lab feed's and Synthea's too. */
async function seed(url: string, token: string, lab: boolean): Promise<string[]> {
  const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/fhir+json' };
  const post = async (path: string, body: string): Promise<{ id?: string }> => {
    const res = await fetch(`${url}${path}`, { method: 'POST', headers, body });
    if (res.status >= 300) throw new Error(`seeding ${path}: ${res.status} ${await res.text()}`);
    return (await res.json()) as { id?: string };
  };
  const ids: string[] = new Array<string>(PATIENTS);
  let next = 0;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      for (let i = next++; i < PATIENTS; i = next++) {
        ids[i] = (await post('/fhir/Patient', JSON.stringify(patient(String(i))))).id!;
      }
    }),
  );
  if (lab) {
    for (let i = 0; i < LAB_PATIENTS; i++) {
      await post('/fhir/Patient', JSON.stringify(labPatient(i)));
    }
    for (const bundle of (await syntheaBundles()).shared) await post('/fhir', bundle);
  }
  return ids;
}
