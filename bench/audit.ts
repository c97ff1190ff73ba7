/**
 * npm run bench:audit: Patient create and read throughput with auditing on and with the audit
 * write skipped (AUDIT_BENCHMARK_SKIP, refused in production), side by side in one run: two
 * instances of the service on one fresh embedded PostgreSQL, runs interleaved (on, off, on,
 * off...), 16 concurrent clients, medians of the repetitions. Prints a markdown table and
 * writes JSON to bench/results/. Not part of npm test.
 */
import 'reflect-metadata';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { benchToken, startBenchApp } from './bench-app.js';
import { median } from './timing.js';
import { DatabaseServer } from '../src/database/database-server.js';

const args = process.argv.slice(2);
const SECONDS = Number(args[args.indexOf('--seconds') + 1] ?? 10) || 10;
const REPETITIONS = Number(args[args.indexOf('--repetitions') + 1] ?? 3) || 3;
const CONCURRENCY = 16;

function patient(): Record<string, unknown> {
  const tag = randomUUID().slice(0, 8);
  return {
    resourceType: 'Patient',
    identifier: [{ system: 'urn:oid:1.2.36.146.595.217.0.1', value: `MRN-${tag}` }],
    name: [{ family: `Bench${tag}`, given: ['Alex'] }],
    telecom: [{ system: 'phone', value: '+1 555 0100' }],
    birthDate: '1970-01-01',
    address: [{ line: ['1 Main St'], city: 'Springfield', postalCode: '12345' }],
  };
}

/** Closed loop: CONCURRENCY clients send requests back to back for SECONDS; 2xx only count. */
async function load(send: () => Promise<Response>): Promise<{ perSecond: number; errors: number }> {
  const until = Date.now() + SECONDS * 1000;
  let ok = 0;
  let errors = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (Date.now() < until) {
        const res = await send();
        await res.arrayBuffer();
        if (res.status < 300) ok++;
        else errors++;
      }
    }),
  );
  return { perSecond: ok / SECONDS, errors };
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'carevault-bench-audit-'));
  process.env['DATA_DIR'] = dir;
  process.env['PHI_MASTER_KEY'] ??= randomBytes(32).toString('base64');
  process.env['LOG_LEVEL'] = 'silent';
  process.env['NODE_ENV'] = 'development';
  process.env['RATE_LIMIT_PER_MINUTE'] = '1000000';
  const on = await startBenchApp();
  // The second instance shares the first one's embedded database and keys.
  process.env['DATABASE_URL'] = await on.app.get(DatabaseServer).connectionUrl();
  process.env['AUDIT_BENCHMARK_SKIP'] = 'true';
  const off = await startBenchApp();
  try {
    const token = await benchToken(on.app, on.url);
    const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/fhir+json' };
    const ids: string[] = [];
    for (let i = 0; i < 200; i++) {
      const res = await fetch(`${on.url}/fhir/Patient`, {
        method: 'POST',
        headers,
        body: JSON.stringify(patient()),
      });
      ids.push(((await res.json()) as { id: string }).id);
    }
    const results: Record<string, Record<string, number[]>> = {
      on: { create: [], read: [], errors: [] },
      off: { create: [], read: [], errors: [] },
    };
    for (let rep = 1; rep <= REPETITIONS; rep++) {
      for (const [mode, target] of [
        ['on', on],
        ['off', off],
      ] as const) {
        const create = await load(() =>
          fetch(`${target.url}/fhir/Patient`, {
            method: 'POST',
            headers,
            body: JSON.stringify(patient()),
          }),
        );
        const read = await load(() =>
          fetch(`${target.url}/fhir/Patient/${ids[Math.floor(Math.random() * ids.length)]}`, {
            headers,
          }),
        );
        results[mode]!['create']!.push(create.perSecond);
        results[mode]!['read']!.push(read.perSecond);
        results[mode]!['errors']!.push(create.errors + read.errors);
        process.stderr.write(
          `rep ${rep} audit ${mode}: create ${create.perSecond.toFixed(0)}/s, read ${read.perSecond.toFixed(0)}/s\n`,
        );
      }
    }
    const row = (name: 'create' | 'read') => {
      const withAudit = median(results['on']![name]!);
      const without = median(results['off']![name]!);
      return { name, withAudit, without, ratio: withAudit / without };
    };
    const rows = [row('create'), row('read')];
    const table = [
      `| Patient ${''}| audit on req/s | audit skipped req/s | on / off |`,
      '| --- | --: | --: | --: |',
      ...rows.map(
        (r) =>
          `| ${r.name} | ${r.withAudit.toFixed(0)} | ${r.without.toFixed(0)} | ${r.ratio.toFixed(2)} |`,
      ),
    ].join('\n');
    process.stdout.write(
      `\n${table}\n\n${CONCURRENCY} clients, ${SECONDS} s per run, median of ${REPETITIONS} interleaved runs; errors: ${JSON.stringify({ on: results['on']!['errors'], off: results['off']!['errors'] })}\n`,
    );
    const out = join(process.cwd(), 'bench', 'results');
    await mkdir(out, { recursive: true });
    await writeFile(
      join(out, `audit-${new Date().toISOString().replace(/[:.]/g, '-')}.json`),
      JSON.stringify({ concurrency: CONCURRENCY, seconds: SECONDS, results, rows }, null, 2),
    );
  } finally {
    await off.app.close();
    await on.app.close();
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
