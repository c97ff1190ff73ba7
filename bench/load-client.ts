/**
 * The HTTP load generator of `npm run bench`, in a process of its own so that its work never
 * shares the service's event loop: autocannon, closed loop, after a warm-up. Takes the path of
 * a LoadSpec JSON file, prints one LoadResult as JSON on stdout.
 */
import { readFile } from 'node:fs/promises';
import autocannon from 'autocannon';
import { percentiles } from './timing.js';

export interface LoadSpec {
  /** http://127.0.0.1:port */
  origin: string;
  method: 'GET' | 'POST';
  /** Request i goes to paths[i % paths.length] with bodies[i % bodies.length], if any. */
  paths: string[];
  bodies?: string[];
  headers: Record<string, string>;
  connections: number;
  warmUpSeconds: number;
  seconds: number;
}

export interface LoadResult {
  /** 2xx responses per second; nothing else counts. */
  perSecond: number;
  p50: number;
  p95: number;
  p99: number;
  /** Non-2xx responses and connection errors or timeouts. */
  errors: number;
  /** The first non-2xx status seen, to say what went wrong. */
  firstErrorStatus?: number;
}

async function run(spec: LoadSpec, seconds: number, record: boolean): Promise<LoadResult> {
  let i = 0;
  const latencies: number[] = [];
  let ok = 0;
  let errors = 0;
  let firstErrorStatus: number | undefined;
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon(
      {
        url: spec.origin,
        connections: spec.connections,
        duration: seconds,
        method: spec.method,
        headers: spec.headers,
        requests: [
          {
            setupRequest: (request) => {
              const n = i++;
              return {
                ...request,
                path: spec.paths[n % spec.paths.length]!,
                ...(spec.bodies ? { body: spec.bodies[n % spec.bodies.length]! } : {}),
              };
            },
          },
        ],
      },
      (error, done) => (error ? reject(error as Error) : resolve(done)),
    );
    instance.on('response', (_client, statusCode, _bytes, responseTime) => {
      if (statusCode >= 200 && statusCode < 300) {
        ok++;
        if (record) latencies.push(responseTime);
      } else {
        errors++;
        firstErrorStatus ??= statusCode;
      }
    });
  });
  errors += result.errors + result.timeouts;
  return {
    perSecond: ok / seconds,
    ...percentiles(latencies),
    errors,
    ...(firstErrorStatus ? { firstErrorStatus } : {}),
  };
}

const spec = JSON.parse(await readFile(process.argv[2]!, 'utf8')) as LoadSpec;
if (spec.warmUpSeconds > 0) await run(spec, spec.warmUpSeconds, false);
process.stdout.write(`${JSON.stringify(await run(spec, spec.seconds, true))}\n`);
