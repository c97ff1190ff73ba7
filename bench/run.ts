/**
 * npm run bench [-- --seconds 30 --warm-up 10 --repetitions 3 --connections 1,16,64
 *                  --workloads W1,W2,W3a,W3b,W4a,W4b,W5,W6 --targets carevault,insecure,baseline
 *                  --profile <file>]
 *
 * Issue 7's benchmark suite (the workloads are in bench/suite.ts) against three targets on one
 * fresh embedded PostgreSQL (bench/targets.ts): CareVault with everything on, CareVault with
 * encryption and audit off, and the Fastify + pg baseline. The load comes from a process of its
 * own (bench/load-client.ts). Runs are interleaved: every workload, connection count and target
 * once, then again, so that drift on a shared machine spreads over all of them; each cell is the
 * median of the repetitions. Prints a markdown table with the issue's targets and the ratios
 * CareVault / baseline and on / off, and writes JSON to bench/results/. Not part of npm test.
 * `--profile <file>` writes a CPU profile of this process (where the services run) over the
 * measured runs only.
 */
import 'reflect-metadata';
import { Session } from 'node:inspector';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LoadResult } from './load-client.js';
import { runLoad, WORKLOADS, type Workload } from './suite.js';
import {
  startTargets,
  TARGET_LABELS,
  TARGET_NAMES,
  type Target,
  type TargetName,
} from './targets.js';
import { median } from './timing.js';
import { writeResults } from './results-file.js';

const args = process.argv.slice(2);
const option = (name: string, fallback: string): string =>
  args.includes(`--${name}`) ? args[args.indexOf(`--${name}`) + 1]! : fallback;
const SECONDS = Number(option('seconds', '30'));
const WARM_UP = Number(option('warm-up', '10'));
const REPETITIONS = Number(option('repetitions', '3'));
const CONNECTIONS = option('connections', '1,16,64').split(',').map(Number);
const WORKLOAD_NAMES = option('workloads', WORKLOADS.map((w) => w.name).join(',')).split(',');
const TARGETS = option('targets', TARGET_NAMES.join(',')).split(',') as TargetName[];
const PROFILE = args.includes('--profile') ? option('profile', '') : undefined;

interface Row {
  workload: string;
  what: string;
  unit: Workload['unit'];
  target: TargetName;
  connections: number;
  perSecond: number;
  /** Each repetition's figure, in order: ratios pair runs of the same repetition. */
  runs: number[];
  p50: number;
  p95: number;
  p99: number;
  errors: number;
  firstError?: string;
  /** The services' CPU time per operation, in microseconds: the median, then each run's. */
  cpuMicros?: number;
  cpuRuns: number[];
}

async function main(): Promise<void> {
  for (const name of TARGETS) {
    if (!TARGET_NAMES.includes(name)) throw new Error(`Unknown target ${name}`);
  }
  const dir = await mkdtemp(join(tmpdir(), 'carevault-bench-'));
  process.env['DATA_DIR'] = dir;
  process.env['LOG_LEVEL'] = 'silent';
  process.env['NODE_ENV'] = 'development';
  // Synthea's largest patient bundle is about 3 MB.
  process.env['BODY_LIMIT'] = String(16 * 1024 * 1024);
  const { targets, close } = await startTargets(TARGETS);
  try {
    const workloads = WORKLOADS.filter((workload) => WORKLOAD_NAMES.includes(workload.name));
    const runs = new Map<string, LoadResult[]>();
    const profiler = PROFILE ? await startProfile() : undefined;
    for (let rep = 1; rep <= REPETITIONS; rep++) {
      for (const workload of workloads) {
        for (const connections of CONNECTIONS) {
          for (const target of targets) {
            const load = await workload.load(target);
            if (!load) continue;
            const result = await runLoad(dir, {
              ...load,
              connections,
              warmUpSeconds: WARM_UP,
              seconds: SECONDS,
            });
            const key = `${workload.name}@${connections}@${target.name}`;
            runs.set(key, [...(runs.get(key) ?? []), result]);
            process.stderr.write(
              `rep ${rep} ${key}: ${perSecondOf(workload, result).toFixed(0)} ${workload.unit}/s, p99 ${result.p99.toFixed(1)} ms, ${result.errors} errors${result.firstError ? ` (first: ${result.firstError})` : ''}, ${result.serviceCpuMicros?.toFixed(0) ?? '?'} µs CPU/op\n`,
            );
          }
        }
      }
    }
    if (profiler) await writeFile(PROFILE!, JSON.stringify(await profiler()));
    const rows = summarize(workloads, targets, runs);
    process.stdout.write(`\n${table(workloads, rows)}\n`);
    await writeResults('bench', {
      seconds: SECONDS,
      warmUp: WARM_UP,
      repetitions: REPETITIONS,
      cpus: cpus().length,
      rows,
      runs: [...runs],
    });
  } finally {
    await close();
    await rm(dir, { recursive: true, force: true });
  }
}

function perSecondOf(workload: Workload, result: LoadResult): number {
  return workload.unit === 'resources' ? result.resourcesPerSecond! : result.perSecond;
}

function summarize(
  workloads: Workload[],
  targets: Target[],
  runs: Map<string, LoadResult[]>,
): Row[] {
  return workloads.flatMap((workload) =>
    CONNECTIONS.flatMap((connections) =>
      targets.flatMap((target) => {
        const results = runs.get(`${workload.name}@${connections}@${target.name}`);
        if (!results) return [];
        return [
          {
            workload: workload.name,
            what: workload.what,
            unit: workload.unit,
            target: target.name,
            connections,
            perSecond: median(results.map((r) => perSecondOf(workload, r))),
            runs: results.map((r) => perSecondOf(workload, r)),
            p50: median(results.map((r) => r.p50)),
            p95: median(results.map((r) => r.p95)),
            p99: median(results.map((r) => r.p99)),
            errors: results.reduce((sum, r) => sum + r.errors, 0),
            ...cpuOf(results),
            ...(results.find((r) => r.firstError)
              ? { firstError: results.find((r) => r.firstError)!.firstError }
              : {}),
          },
        ];
      }),
    ),
  );
}

function cpuOf(results: LoadResult[]): Pick<Row, 'cpuMicros' | 'cpuRuns'> {
  const cpuRuns = results.flatMap((r) =>
    r.serviceCpuMicros === undefined ? [] : [r.serviceCpuMicros],
  );
  return cpuRuns.length > 0 ? { cpuMicros: median(cpuRuns), cpuRuns } : { cpuRuns };
}

/**
 * One line per workload and connection count: CareVault's figures against the issue's target,
 * then the ratios the issue sets: CareVault / baseline (at least 0.8 on writes, 0.7 on reads)
 * and everything on / encryption and audit off (at least 0.75).
 */
function table(workloads: Workload[], rows: Row[]): string {
  const ms = (value: number): string => value.toFixed(1);
  // The median of the ratios of runs made in the same repetition, a minute or so apart: the
  // shared machine drifts by a third between repetitions, which pairing cancels.
  const ratio = (a: Row | undefined, b: Row | undefined, floor: number): string => {
    if (!a || !b) return '';
    const value = median(a.runs.map((run, i) => run / (b.runs[i] ?? Number.NaN)));
    // Rounded down: 0.749 is shown as 0.74 ✗, not as 0.75 ✗.
    return `${(Math.floor(value * 100) / 100).toFixed(2)} ${value >= floor ? '✓' : '✗'} (≥ ${floor})`;
  };
  const lines = [
    `${cpus().length} CPUs shared by the services, PostgreSQL and the load client (no pinning); ${WARM_UP} s warm-up, ${SECONDS} s measured, median of ${REPETITIONS} interleaved runs (ratios: median of the ratios within each repetition); only 2xx (AA) count.`,
    '',
    '| Workload | Conn. | CareVault /s | p50 ms | p95 ms | p99 ms | errors | target | on/off /s | baseline /s | CareVault / baseline | on / off |',
    '| --- | --: | --: | --: | --: | --: | --: | --- | --: | --: | --- | --- |',
  ];
  const cells = cellsOf(workloads, rows);
  for (const { workload, connections, on, off, baseline } of cells) {
    const goal = workload.target
      ? `≥ ${workload.target.perSecond} ${workload.unit}/s${workload.target.p99 ? `, p99 < ${workload.target.p99} ms` : ''}`
      : '';
    const met =
      on && workload.target
        ? on.perSecond >= workload.target.perSecond &&
          (!workload.target.p99 || on.p99 < workload.target.p99)
          ? ' ✓'
          : ' ✗'
        : '';
    lines.push(
      `| ${workload.name} ${workload.what} | ${connections} | ${on ? on.perSecond.toFixed(0) : ''} | ${on ? ms(on.p50) : ''} | ${on ? ms(on.p95) : ''} | ${on ? ms(on.p99) : ''} | ${on ? on.errors : ''} | ${goal}${met} | ${off ? off.perSecond.toFixed(0) : ''} | ${baseline ? baseline.perSecond.toFixed(0) : ''} | ${ratio(on, baseline, workload.kind === 'write' ? 0.8 : 0.7)} | ${ratio(on, off, 0.75)} |`,
    );
  }
  lines.push('', ...cpuTable(cells));
  const failed = rows.filter((r) => r.errors > 0);
  if (failed.length > 0) {
    lines.push(
      '',
      `Errors: ${failed.map((r) => `${r.workload}@${r.connections} ${TARGET_LABELS[r.target]}: ${r.errors} (first: ${r.firstError ?? '?'})`).join('; ')}`,
    );
  }
  return lines.join('\n');
}

/**
 * The services' CPU time per operation, each target's median, and the others' against
 * CareVault's (the median of the ratios within each repetition). When the service's one Node
 * thread is the bound, its throughput ratio to the baseline tends to this CPU ratio; when
 * PostgreSQL is, towards 1. The figures drift with the machine's load as throughput does.
 */
function cpuTable(cells: Cell[]): string[] {
  const micros = (row: Row | undefined): string => row?.cpuMicros?.toFixed(0) ?? '';
  const ratio = (a: Row | undefined, b: Row | undefined): string =>
    a && b && a.cpuRuns.length > 0 && b.cpuRuns.length === a.cpuRuns.length
      ? median(a.cpuRuns.map((run, i) => b.cpuRuns[i]! / run)).toFixed(2)
      : '';
  const lines = [
    "CPU time of the services per operation (user + system of the process they run in, over the measured run, divided by the operations answered), µs; the ratios are the other target's time over CareVault's (1 = as cheap):",
    '',
    '| Workload | Conn. | CareVault µs | off µs | baseline µs | baseline / CareVault | off / CareVault |',
    '| --- | --: | --: | --: | --: | --: | --: |',
  ];
  for (const { workload, connections, on, off, baseline } of cells) {
    lines.push(
      `| ${workload.name} ${workload.what} | ${connections} | ${micros(on)} | ${micros(off)} | ${micros(baseline)} | ${ratio(on, baseline)} | ${ratio(on, off)} |`,
    );
  }
  return lines;
}

/** One line of a table: a workload at one connection count, and each target's row of it. */
interface Cell {
  workload: Workload;
  connections: number;
  on: Row | undefined;
  off: Row | undefined;
  baseline: Row | undefined;
}

/** The lines of the tables, in order: every workload and connection count some target ran. */
function cellsOf(workloads: Workload[], rows: Row[]): Cell[] {
  const find = (workload: Workload, connections: number, target: TargetName): Row | undefined =>
    rows.find(
      (r) => r.workload === workload.name && r.connections === connections && r.target === target,
    );
  return workloads.flatMap((workload) =>
    CONNECTIONS.flatMap((connections) => {
      const cell = {
        workload,
        connections,
        on: find(workload, connections, 'carevault'),
        off: find(workload, connections, 'insecure'),
        baseline: find(workload, connections, 'baseline'),
      };
      return cell.on || cell.off || cell.baseline ? [cell] : [];
    }),
  );
}

/** A CPU profile of this process, for chrome://inspect or speedscope; returns its stop function. */
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
  process.stderr.write(
    `${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
  );
  process.exitCode = 1;
});
