/**
 * The load generator of `npm run bench` and `bench:soak`, in a process of its own so that its
 * work never shares the service's event loop. Takes the path of a LoadSpec JSON file, runs a
 * warm-up and then the measured run, prints one LoadResult as JSON on stdout.
 *   http:    autocannon, closed loop (or an overall rate), request i = requests[i % n];
 *   bundles: transaction Bundles over keep-alive connections, counting the resources of 2xx ones;
 *   mllp:    ORU^R01 messages, each connection sending its next when the last ACK arrives.
 */
import { readFile } from 'node:fs/promises';
import { Agent, request } from 'node:http';
import { connect } from 'node:net';
import autocannon from 'autocannon';
import { encodeFrame, MllpDecoder } from '../src/hl7/mllp/mllp-decoder.js';
import { MEASURING, percentiles } from './timing.js';
import { labResult } from './workloads.js';

export interface LoadRequest {
  method: 'GET' | 'POST';
  path: string;
  body?: string;
  /** Resources a 2xx answer stands for (bundles). */
  resources?: number;
}

interface Timing {
  connections: number;
  warmUpSeconds: number;
  seconds: number;
}

interface HttpTarget {
  /** http://127.0.0.1:port */
  origin: string;
  headers: Record<string, string>;
  requests: LoadRequest[];
}

export type LoadSpec =
  | (Timing &
      HttpTarget & {
        kind: 'http';
        /** Overall requests/s; closed loop when unset. */ rate?: number;
      })
  | (Timing & HttpTarget & { kind: 'bundles' })
  | (Timing & { kind: 'mllp'; port: number; patients: number; tag: string });

export interface LoadResult {
  /** 2xx responses (or AA ACKs) per second; nothing else counts. */
  perSecond: number;
  /** Resources per second in 2xx bundles (bundles only). */
  resourcesPerSecond?: number;
  p50: number;
  p95: number;
  p99: number;
  /** Non-2xx responses (non-AA ACKs), connection errors and timeouts. */
  errors: number;
  /** The first non-2xx status (or ACK code) seen, to say what went wrong. */
  firstError?: string;
  /** Operations answered in the measured run, whatever the answer. */
  answered: number;
  /**
   * CPU time (user + system) of the process that runs the services, per operation answered in
   * the measured run, in microseconds. Set by runLoad, which runs in that process.
   */
  serviceCpuMicros?: number;
}

class Tally {
  ok = 0;
  resources = 0;
  errors = 0;
  firstError: string | undefined;
  readonly latencies: number[] = [];

  constructor(private readonly record: boolean) {}

  success(milliseconds: number, resources = 0): void {
    this.ok++;
    this.resources += resources;
    if (this.record) this.latencies.push(milliseconds);
  }

  failure(what: string): void {
    this.errors++;
    this.firstError ??= what;
  }

  result(seconds: number, withResources: boolean): LoadResult {
    return {
      perSecond: this.ok / seconds,
      ...(withResources ? { resourcesPerSecond: this.resources / seconds } : {}),
      ...percentiles(this.latencies),
      errors: this.errors,
      ...(this.firstError ? { firstError: this.firstError } : {}),
      answered: this.ok + this.errors,
    };
  }
}

async function autocannonRun(
  spec: Extract<LoadSpec, { kind: 'http' }>,
  seconds: number,
  tally: Tally,
): Promise<void> {
  let i = 0;
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon(
      {
        url: spec.origin,
        connections: spec.connections,
        duration: seconds,
        headers: spec.headers,
        ...(spec.rate ? { overallRate: spec.rate } : {}),
        requests: [
          {
            setupRequest: (base) => {
              const next = spec.requests[i++ % spec.requests.length]!;
              // A fresh headers object each time: autocannon adds Content-Length to the one it
              // is given, which a GET after a POST would then send without a body.
              return {
                ...base,
                method: next.method,
                path: next.path,
                headers: { ...spec.headers },
                ...(next.body === undefined ? {} : { body: next.body }),
              };
            },
          },
        ],
      },
      (error, done) => (error ? reject(error as Error) : resolve(done)),
    );
    instance.on('response', (_client, statusCode, _bytes, responseTime) => {
      if (statusCode >= 200 && statusCode < 300) tally.success(responseTime);
      else tally.failure(String(statusCode));
    });
  });
  for (let n = 0; n < result.errors + result.timeouts; n++) tally.failure('connection');
}

/** One connection of a closed loop: sends operation i and resolves with what came back. */
interface Connection {
  send(i: number): Promise<{ ok: boolean; what: string; resources?: number }>;
  close(): void;
}

/** `connections` connections, each sending its next operation when the last one is answered. */
async function closedLoop(
  connections: number,
  seconds: number,
  tally: Tally,
  open: () => Promise<Connection>,
): Promise<void> {
  const until = performance.now() + seconds * 1000;
  let next = 0;
  await Promise.all(
    Array.from({ length: connections }, async () => {
      const connection = await open();
      try {
        while (performance.now() < until) {
          const started = performance.now();
          const answer = await connection.send(next++);
          const finished = performance.now();
          // What completes after the window is not counted: a 1,000-resource bundle would
          // otherwise add seconds of work to a run that has ended.
          if (finished > until) break;
          if (answer.ok) tally.success(finished - started, answer.resources);
          else tally.failure(answer.what);
        }
      } finally {
        connection.close();
      }
    }),
  );
}

function bundleConnection(spec: Extract<LoadSpec, { kind: 'bundles' }>): Promise<Connection> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const send = (i: number): Promise<{ ok: boolean; what: string; resources?: number }> =>
    new Promise((resolve, reject) => {
      const next = spec.requests[i % spec.requests.length]!;
      const req = request(
        `${spec.origin}${next.path}`,
        { method: next.method, agent, headers: spec.headers },
        (res) => {
          res.resume();
          res.on('end', () => {
            const status = res.statusCode ?? 0;
            const ok = status >= 200 && status < 300;
            resolve({
              ok,
              what: String(status),
              ...(ok ? { resources: next.resources ?? 1 } : {}),
            });
          });
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(next.body);
    });
  return Promise.resolve({ send, close: () => agent.destroy() });
}

async function mllpConnection(spec: Extract<LoadSpec, { kind: 'mllp' }>): Promise<Connection> {
  const socket = connect(spec.port, '127.0.0.1');
  socket.setNoDelay(true);
  await new Promise((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const decoder = new MllpDecoder(1 << 20);
  let waiting: ((ack: string) => void) | undefined;
  socket.on('data', (chunk: Buffer) => {
    for (const event of decoder.push(chunk)) {
      if (event.kind === 'frame') waiting?.(event.payload.toString('utf8'));
    }
  });
  return {
    send: (i) =>
      new Promise((resolve) => {
        waiting = (ack) => {
          const code = /\rMSA\|([A-Z]{2})\|/.exec(ack)?.[1] ?? 'no MSA';
          resolve({ ok: code === 'AA', what: code });
        };
        socket.write(encodeFrame(labResult(spec.tag, i, spec.patients)));
      }),
    close: () => socket.destroy(),
  };
}

async function run(spec: LoadSpec, seconds: number, record: boolean): Promise<LoadResult> {
  const tally = new Tally(record);
  switch (spec.kind) {
    case 'http':
      await autocannonRun(spec, seconds, tally);
      break;
    case 'bundles':
      await closedLoop(spec.connections, seconds, tally, () => bundleConnection(spec));
      break;
    case 'mllp':
      // Warm-up and measured run must not send the same control ids (a resend is not processed).
      await closedLoop(spec.connections, seconds, tally, () =>
        mllpConnection({ ...spec, tag: `${spec.tag}${record ? 'm' : 'w'}` }),
      );
      break;
  }
  return tally.result(seconds, spec.kind === 'bundles');
}

const spec = JSON.parse(await readFile(process.argv[2]!, 'utf8')) as LoadSpec;
if (spec.warmUpSeconds > 0) await run(spec, spec.warmUpSeconds, false);
// runLoad measures the services' CPU time from this line on.
process.stderr.write(`${MEASURING}\n`);
process.stdout.write(`${JSON.stringify(await run(spec, spec.seconds, true))}\n`);
