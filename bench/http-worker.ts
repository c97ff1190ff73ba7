/**
 * The HTTP client of the search benchmark, on its own thread: a client sharing the service's
 * event loop would add its own parsing to every latency it measures. It uses node:http with
 * keep-alive connections, the lightest client Node has, so its own cost stays small.
 */
import { Agent, request } from 'node:http';
import { parentPort, workerData } from 'node:worker_threads';
import { CONCURRENCY, timed } from './timing.js';

export interface HttpWorkload {
  name: string;
  token: string;
  /** URL of operation i is urls[i % urls.length]. */
  urls: string[];
}

const { name, token, urls } = workerData as HttpWorkload;
const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY });

function get(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent, headers: { authorization: `Bearer ${token}` } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

const stats = await timed(async (i) => {
  const res = await get(urls[i % urls.length]!);
  const body = JSON.parse(res.body) as { entry?: unknown[] };
  if (res.status !== 200 || !body.entry?.length) {
    throw new Error(`${name}: ${res.status}, ${body.entry?.length ?? 0} entries`);
  }
});
agent.destroy();
parentPort?.postMessage(stats);
