/** Latency and throughput of one operation, measured the same way for the API and the SQL floor. */
export interface Stats {
  p50: number;
  p95: number;
  p99: number;
  perSecond: number;
}

export const SAMPLES = 400;
export const WARM_UP = 50;
export const CONCURRENCY = 16;
/** Operation indexes: warm-up from 0, latency samples from 1000, throughput from 5000. */
const WARM_UP_FROM = 0;
const SAMPLES_FROM = 1000;
const THROUGHPUT_FROM = 5000;

/** What the load client writes to stderr when its measured run begins (see runLoad). */
export const MEASURING = 'measuring';

/** Latency one at a time (after a warm-up), then throughput at CONCURRENCY for 5 s. */
export async function timed(run: (i: number) => Promise<void>): Promise<Stats> {
  for (let i = 0; i < WARM_UP; i++) await run(WARM_UP_FROM + i);
  const latencies: number[] = [];
  for (let i = 0; i < SAMPLES; i++) {
    const start = performance.now();
    await run(SAMPLES_FROM + i);
    latencies.push(performance.now() - start);
  }
  const { p50, p95, p99 } = percentiles(latencies);
  let done = 0;
  const until = performance.now() + 5000;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async (_, worker) => {
      for (let i = worker; performance.now() < until; i += CONCURRENCY) {
        await run(THROUGHPUT_FROM + i);
        done += 1;
      }
    }),
  );
  return { p50, p95, p99, perSecond: done / ((performance.now() - started) / 1000) };
}

export function percentiles(values: readonly number[]): Omit<Stats, 'perSecond'> {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number): number =>
    sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
  return { p50: at(0.5), p95: at(0.95), p99: at(0.99) };
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}
