/**
 * npm run bench:soak [-- --minutes 10 --connections 16 --share 0.7]
 *
 * The W6 mix (70 % read, 20 % search, 10 % create) against CareVault with everything on, first
 * flat out for 15 s to find the peak, then at `share` of it for `minutes`. Every 30 s it samples
 * the service's memory (RSS, V8 heap) and its event-loop delay; at the end it reports the heap's
 * trend over the second half (a leak grows steadily; a healthy heap saws up and down around a
 * level) and the errors, which must be zero. Prints a markdown table, writes JSON to
 * bench/results/. The service runs in this process; the load comes from bench/load-client.ts.
 */
import 'reflect-metadata';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { runLoad, WORKLOADS } from './suite.js';
import { startTargets } from './targets.js';
import { writeResults } from './results-file.js';

const args = process.argv.slice(2);
const option = (name: string, fallback: string): string =>
  args.includes(`--${name}`) ? args[args.indexOf(`--${name}`) + 1]! : fallback;
const MINUTES = Number(option('minutes', '10'));
const CONNECTIONS = Number(option('connections', '16'));
const SHARE = Number(option('share', '0.7'));
const SAMPLE_SECONDS = 30;
const MB = 1024 * 1024;

interface Sample {
  minute: number;
  rssMb: number;
  heapUsedMb: number;
  eventLoopP99Ms: number;
}

/** Least-squares slope of y over x. */
function slope(points: { x: number; y: number }[]): number {
  const n = points.length;
  const mx = points.reduce((sum, p) => sum + p.x, 0) / n;
  const my = points.reduce((sum, p) => sum + p.y, 0) / n;
  const num = points.reduce((sum, p) => sum + (p.x - mx) * (p.y - my), 0);
  const den = points.reduce((sum, p) => sum + (p.x - mx) ** 2, 0);
  return den === 0 ? 0 : num / den;
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'carevault-soak-'));
  process.env['DATA_DIR'] = dir;
  process.env['LOG_LEVEL'] = 'silent';
  process.env['NODE_ENV'] = 'development';
  // The load client keeps the token it is given for the whole soak.
  process.env['ACCESS_TOKEN_TTL'] = '3600';
  const { targets, close } = await startTargets(['carevault']);
  try {
    const load = await WORKLOADS.find((workload) => workload.name === 'W6')!.load(targets[0]!);
    if (load?.kind !== 'http') throw new Error('W6 is an HTTP load');
    const peak = await runLoad(dir, {
      ...load,
      connections: CONNECTIONS,
      warmUpSeconds: 5,
      seconds: 15,
    });
    const rate = Math.max(1, Math.round(peak.perSecond * SHARE));
    process.stderr.write(
      `Peak ${peak.perSecond.toFixed(0)} req/s; soaking at ${rate} req/s for ${MINUTES} min\n`,
    );

    const samples: Sample[] = [];
    const delay = monitorEventLoopDelay({ resolution: 10 });
    delay.enable();
    const started = performance.now();
    const sample = (): void => {
      const memory = process.memoryUsage();
      samples.push({
        minute: (performance.now() - started) / 60_000,
        rssMb: memory.rss / MB,
        heapUsedMb: memory.heapUsed / MB,
        eventLoopP99Ms: delay.percentile(99) / 1e6,
      });
      delay.reset();
      const last = samples.at(-1)!;
      process.stderr.write(
        `${last.minute.toFixed(1)} min: RSS ${last.rssMb.toFixed(0)} MB, heap ${last.heapUsedMb.toFixed(0)} MB, event loop p99 ${last.eventLoopP99Ms.toFixed(1)} ms\n`,
      );
    };
    const timer = setInterval(sample, SAMPLE_SECONDS * 1000);
    const result = await runLoad(dir, {
      ...load,
      rate,
      connections: CONNECTIONS,
      warmUpSeconds: 0,
      seconds: MINUTES * 60,
    }).finally(() => clearInterval(timer));
    delay.disable();

    const secondHalf = samples.filter((s) => s.minute >= MINUTES / 2);
    const heapTrend = slope(secondHalf.map((s) => ({ x: s.minute, y: s.heapUsedMb })));
    const rssTrend = slope(secondHalf.map((s) => ({ x: s.minute, y: s.rssMb })));
    const lines = [
      `Soak: W6 mix at ${rate} req/s (${SHARE} of the ${peak.perSecond.toFixed(0)} req/s peak at ${CONNECTIONS} connections) for ${MINUTES} min, CareVault with everything on.`,
      '',
      '| minute | RSS MB | heap used MB | event-loop delay p99 ms |',
      '| --: | --: | --: | --: |',
      ...samples.map(
        (s) =>
          `| ${s.minute.toFixed(1)} | ${s.rssMb.toFixed(0)} | ${s.heapUsedMb.toFixed(0)} | ${s.eventLoopP99Ms.toFixed(1)} |`,
      ),
      '',
      `Served ${result.perSecond.toFixed(0)} req/s (2xx), latency p50 ${result.p50.toFixed(1)} ms, p99 ${result.p99.toFixed(1)} ms; errors: ${result.errors}${result.firstError ? ` (first: ${result.firstError})` : ''}.`,
      `Trend over the second half: heap ${heapTrend >= 0 ? '+' : ''}${heapTrend.toFixed(2)} MB/min, RSS ${rssTrend >= 0 ? '+' : ''}${rssTrend.toFixed(2)} MB/min.`,
    ];
    process.stdout.write(`\n${lines.join('\n')}\n`);
    await writeResults('soak', {
      minutes: MINUTES,
      rate,
      peak,
      result,
      samples,
      heapTrend,
      rssTrend,
    });
    if (result.errors > 0) process.exitCode = 1;
  } finally {
    await close();
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  process.stderr.write(
    `${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
  );
  process.exitCode = 1;
});
