/**
 * npm run bench:check-baseline
 *
 * Proves that the baseline does CareVault's database work: on a fresh embedded PostgreSQL
 * with pg_stat_statements, CareVault and the baseline each get a database of their own, are
 * seeded alike through their APIs, and are sent each benchmark request once (after a warm-up
 * round). For each request the two must run the same statements as pg_stat_statements counts
 * them (text and number, BEGIN and COMMIT included, and those of the audit trigger that runs at
 * commit) and add the same number of rows to every table; the rows written
 * for the same bodies must be equal (index rows and keyed hashes value for value, ciphertexts
 * of the same length), and so must the audit rows. Finally each service reads a row the
 * other one encrypted. Prints tables; exits 1 on any difference.
 */
import 'reflect-metadata';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { Logger } from '@nestjs/common';
import pg from 'pg';
import { benchToken, startBenchApp } from '../bench-app.js';
import { patient, SYSTEM, transaction } from '../workloads.js';
import {
  copyResource,
  lastAuditRow,
  rowCounts,
  rowsOf,
  startServer,
  statementCalls,
  statementsBetween,
  type Statement,
} from './check-database.js';
import { startBaseline } from './index.js';

interface Side {
  name: 'CareVault' | 'baseline';
  url: string;
  token: string;
  database: string;
  client: pg.Client;
  /** Seeded patients' ids, in seeding order. */
  seeded: string[];
}

interface Request {
  name: string;
  method: 'GET' | 'POST';
  path: (side: Side) => string;
  body?: string;
}

type Json = Record<string, unknown>;

const SEEDED = 25;
let failures = 0;

function report(line: string, ok = true): void {
  if (!ok) failures++;
  process.stdout.write(`${line}${ok ? '' : '   <-- differs'}\n`);
}

async function send(side: Side, request: Request): Promise<{ status: number; body: Json }> {
  const res = await fetch(`${side.url}${request.path(side)}`, {
    method: request.method,
    headers: {
      authorization: `Bearer ${side.token}`,
      'content-type': 'application/fhir+json',
      accept: 'application/fhir+json',
    },
    ...(request.body ? { body: request.body } : {}),
  });
  return { status: res.status, body: (await res.json()) as Json };
}

/** The five requests of the benchmark; `tag` makes the written bodies new ones. */
function requests(tag: string): Request[] {
  return [
    {
      name: 'W1',
      method: 'POST',
      path: () => '/fhir/Patient',
      body: JSON.stringify(patient(`w1-${tag}`)),
    },
    { name: 'W2', method: 'GET', path: (side) => `/fhir/Patient/${side.seeded[0]!}` },
    {
      name: 'W3a',
      method: 'GET',
      path: () => `/fhir/Patient?identifier=${encodeURIComponent(`${SYSTEM}|MRN-10`)}`,
    },
    { name: 'W3b', method: 'GET', path: () => '/fhir/Patient?family=Family1' },
    { name: 'W4a', method: 'POST', path: () => '/fhir', body: JSON.stringify(transaction(tag)) },
  ];
}

/** The ids a write created, named by their place in the request: what rows are compared by. */
function createdIds(request: Request, body: Json): Map<string, string> {
  if (request.name === 'W1') return new Map([[String(body['id']), 'created']]);
  if (request.name !== 'W4a') return new Map();
  const entries = (body['entry'] ?? []) as { resource?: { id?: string } }[];
  return new Map(entries.map((entry, i) => [String(entry.resource?.id), `entry ${i}`]));
}

/** What a response says that should not depend on which service answered it. */
function shape(body: Json): unknown {
  const entries = Array.isArray(body['entry']) ? (body['entry'] as Json[]) : undefined;
  return {
    resourceType: body['resourceType'],
    type: body['type'],
    entries: entries?.length,
    links: (body['link'] as { relation: string }[] | undefined)?.map((link) => link.relation),
    statuses: entries?.map((entry) => (entry['response'] as Json | undefined)?.['status']),
    elements: Object.keys(body).sort(),
  };
}

async function measure(request: Request, sides: [Side, Side], admin: pg.Client): Promise<void> {
  const results = [];
  for (const side of sides) {
    const countsBefore = await rowCounts(side.client);
    const before = await statementCalls(admin, side.database);
    const response = await send(side, request);
    const statements = statementsBetween(before, await statementCalls(admin, side.database));
    const countsAfter = await rowCounts(side.client);
    const added = new Map(
      [...countsAfter].map(([table, n]) => [table, n - (countsBefore.get(table) ?? 0)]),
    );
    const rows = await rowsOf(side.client, createdIds(request, response.body));
    results.push({ response, statements, added, rows, audit: await lastAuditRow(side.client) });
  }
  const [cv, bl] = results as [(typeof results)[0], (typeof results)[0]];
  report(`\n## ${request.name} ${request.method} ${request.path(sides[0]).slice(0, 60)}\n`);
  report(
    `status: CareVault ${cv.response.status}, baseline ${bl.response.status}`,
    cv.response.status === bl.response.status,
  );
  const sameShape = isDeepStrictEqual(shape(cv.response.body), shape(bl.response.body));
  report(`response shape equal: ${sameShape}`, sameShape);
  printStatements(cv.statements, bl.statements);
  report('\n| table | CareVault rows added | baseline rows added | same rows |');
  report('| --- | --: | --: | --- |');
  for (const table of new Set([...cv.added.keys(), ...bl.added.keys()])) {
    const [a, b] = [cv.added.get(table) ?? 0, bl.added.get(table) ?? 0];
    const compared = cv.rows.has(table) && createdIds(request, cv.response.body).size > 0;
    const same = !compared || isDeepStrictEqual(cv.rows.get(table), bl.rows.get(table));
    if (a !== 0 || b !== 0) {
      report(
        `| ${table} | ${a} | ${b} | ${compared ? (same ? 'yes' : 'NO') : ''} |`,
        a === b && same,
      );
    }
  }
  report(`\naudit row equal: ${cv.audit === bl.audit}`, cv.audit === bl.audit);
  if (cv.audit !== bl.audit) report(`  CareVault: ${cv.audit}\n  baseline:  ${bl.audit}`);
}

function printStatements(cv: Statement[], bl: Statement[]): void {
  const total = (list: Statement[]) => list.reduce((sum, s) => sum + s.calls, 0);
  report(`\nstatements: CareVault ${total(cv)}, baseline ${total(bl)}`, total(cv) === total(bl));
  const queries = [...new Set([...cv, ...bl].map((s) => s.query))].sort();
  report('| calls CareVault | calls baseline | statement (pg_stat_statements text) |');
  report('| --: | --: | --- |');
  for (const query of queries) {
    const [a, b] = [cv, bl].map((list) => list.find((s) => s.query === query)?.calls ?? 0);
    // A statement on one side only is printed whole: where the two differ may be past 110.
    const shown = a === b && query.length > 110 ? `${query.slice(0, 110)}…` : query;
    report(`| ${a} | ${b} | ${shown} |`, a === b);
  }
}

/**
 * Each service reads a Patient the other one wrote (CareVault its history row too, by vread):
 * the same ciphertext format, keys and AAD on both sides.
 */
async function crossRead(sides: [Side, Side], written: [Json, Json]): Promise<void> {
  report('\n## Each side reads a Patient the other encrypted\n');
  for (const [reader, writer, body] of [
    [sides[0], sides[1], written[1]],
    [sides[1], sides[0], written[0]],
  ] as const) {
    const id = String(body['id']);
    await copyResource(writer.client, reader.client, 'Patient', id);
    const paths = [
      `/fhir/Patient/${id}`,
      ...(reader === sides[0] ? [`/fhir/Patient/${id}/_history/1`] : []),
    ];
    for (const path of paths) {
      const read = await send(reader, { name: 'read', method: 'GET', path: () => path });
      const same = read.status === 200 && isDeepStrictEqual(read.body, body);
      report(
        `${reader.name} reads ${writer.name}'s row (${path.includes('_history') ? 'resource_history' : 'resource'}): ${read.status}, same resource: ${same}`,
        same,
      );
    }
  }
}

async function seed(side: Side): Promise<void> {
  for (let i = 0; i < SEEDED; i++) {
    const created = await send(side, {
      name: 'seed',
      method: 'POST',
      path: () => '/fhir/Patient',
      body: JSON.stringify(patient(`1${i}`)),
    });
    if (created.status !== 201) throw new Error(`${side.name}: seeding answered ${created.status}`);
    side.seeded.push(String(created.body['id']));
  }
}

async function main(): Promise<void> {
  Logger.overrideLogger(false);
  const dir = await mkdtemp(join(tmpdir(), 'carevault-baseline-check-'));
  const server = await startServer(dir);
  const phiMasterKey = randomBytes(32).toString('base64');
  Object.assign(process.env, {
    DATA_DIR: dir,
    DATABASE_URL: server.carevault,
    PHI_MASTER_KEY: phiMasterKey,
    NODE_ENV: 'development',
    LOG_LEVEL: 'silent',
    MIGRATIONS_RUN: 'true',
    RATE_LIMIT_PER_MINUTE: '1000000',
  });
  const clients = [server.admin, server.carevault, server.baseline].map(
    (connectionString) => new pg.Client({ connectionString }),
  );
  const [admin, cvClient, blClient] = clients as [pg.Client, pg.Client, pg.Client];
  for (const client of clients) await client.connect();
  const { app, url } = await startBenchApp();
  const baseline = await startBaseline({ databaseUrl: server.baseline, phiMasterKey });
  try {
    const sides: [Side, Side] = [
      {
        name: 'CareVault',
        url,
        token: await benchToken(app, url),
        database: 'carevault',
        client: cvClient,
        seeded: [],
      },
      { name: 'baseline', ...baseline, database: 'baseline', client: blClient, seeded: [] },
    ];
    for (const side of sides) await seed(side);
    for (const request of requests('warm-up')) {
      for (const side of sides) await send(side, request);
    }
    const measured = requests('measured');
    for (const request of measured) await measure(request, sides, admin);
    const w1 = measured[0]!;
    const written = await Promise.all(
      sides.map((side) => send(side, { ...w1, body: JSON.stringify(patient('w1-cross')) })),
    );
    await crossRead(sides, [written[0]!.body, written[1]!.body]);
  } finally {
    await baseline.close();
    await app.close();
    for (const client of clients) await client.end();
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  }
  report(failures === 0 ? '\nSame database work.' : `\n${failures} difference(s).`);
  process.exitCode = failures === 0 ? 0 : 1;
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
