/**
 * The HTTP client of the search benchmark, on its own thread: a client sharing the service's
 * event loop would add its own parsing to every latency it measures.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { timed } from './timing.js';

export interface HttpWorkload {
  name: string;
  token: string;
  /** URL of operation i is urls[i % urls.length]. */
  urls: string[];
}

const { name, token, urls } = workerData as HttpWorkload;

const stats = await timed(async (i) => {
  const res = await fetch(urls[i % urls.length]!, {
    headers: { authorization: `Bearer ${token}` },
  });
  const body = (await res.json()) as { entry?: unknown[] };
  if (res.status !== 200 || !body.entry?.length) {
    throw new Error(`${name}: ${res.status}, ${body.entry?.length ?? 0} entries`);
  }
});
parentPort?.postMessage(stats);
