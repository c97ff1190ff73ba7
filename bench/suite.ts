/**
 * The workloads of `npm run bench` (issue 7), as load specs for bench/load-client.ts, and the
 * function that runs one in a process of its own.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { LoadRequest, LoadResult, LoadSpec } from './load-client.js';
import { LAB_PATIENTS, PATIENTS, type Target } from './targets.js';
import { MEASURING } from './timing.js';
import { patient, SYSTEM, syntheaBundles, transaction } from './workloads.js';

/** A load spec without its timing, which the run decides (Omit over each kind of spec). */
type WithoutTiming<S> = S extends unknown
  ? Omit<S, 'connections' | 'warmUpSeconds' | 'seconds'>
  : never;
export type Load = WithoutTiming<LoadSpec>;

export interface Workload {
  name: string;
  what: string;
  /** What one counted operation is. */
  unit: 'req' | 'resources' | 'messages';
  /** Reads and searches are held to a different baseline ratio than writes. */
  kind: 'read' | 'write';
  /** The issue's target on this machine, when it sets one. */
  target?: { perSecond: number; p99?: number };
  /** The load for a target, or undefined when the target cannot run it (no MLLP, no Synthea). */
  load(target: Target): Promise<Load | undefined>;
}

const pick = (count: number): number[] => Array.from({ length: count }, (_, i) => i);

async function http(target: Target, requests: LoadRequest[]): Promise<Load> {
  return { kind: 'http', origin: target.url, headers: await headers(target), requests };
}

async function headers(target: Target): Promise<Record<string, string>> {
  return {
    authorization: `Bearer ${await target.token()}`,
    'content-type': 'application/fhir+json',
    accept: 'application/fhir+json',
  };
}

const creates = (): LoadRequest[] =>
  pick(5000).map((i) => ({
    method: 'POST',
    path: '/fhir/Patient',
    body: JSON.stringify(patient(`w1-${i}`)),
  }));
const reads = (target: Target): LoadRequest[] =>
  target.ids.map((id) => ({ method: 'GET', path: `/fhir/Patient/${id}` }));
const identifierSearches = (): LoadRequest[] =>
  pick(PATIENTS).map((i) => ({
    method: 'GET',
    path: `/fhir/Patient?identifier=${encodeURIComponent(`${SYSTEM}|MRN-${i}`)}`,
  }));

/** W6: 70 % reads, 20 % searches by identifier, 10 % creates, interleaved. */
function mix(target: Target): LoadRequest[] {
  const [read, search, create] = [reads(target), identifierSearches(), creates()];
  return pick(5000).map((i) => {
    const slot = i % 10;
    if (slot === 0) return create[i % create.length]!;
    if (slot <= 2) return search[i % search.length]!;
    return read[i % read.length]!;
  });
}

export const WORKLOADS: Workload[] = [
  {
    name: 'W1',
    what: 'create Patient',
    unit: 'req',
    kind: 'write',
    target: { perSecond: 3000, p99: 30 },
    load: (target) => http(target, creates()),
  },
  {
    name: 'W2',
    what: 'read Patient',
    unit: 'req',
    kind: 'read',
    target: { perSecond: 3000, p99: 25 },
    load: (target) => http(target, reads(target)),
  },
  {
    name: 'W3a',
    what: 'search by identifier',
    unit: 'req',
    kind: 'read',
    target: { perSecond: 2000 },
    load: (target) => http(target, identifierSearches()),
  },
  {
    name: 'W3b',
    what: 'search by family prefix',
    unit: 'req',
    kind: 'read',
    // Family1 to Family9 (about 110 matches each): the first page of 20.
    load: (target) =>
      http(
        target,
        pick(9).map((i) => ({ method: 'GET', path: `/fhir/Patient?family=Family${i + 1}1` })),
      ),
  },
  {
    name: 'W4a',
    what: 'transaction, 1 Patient + 10 Observations',
    unit: 'req',
    kind: 'write',
    load: (target) =>
      http(
        target,
        pick(1000).map((i) => ({
          method: 'POST',
          path: '/fhir',
          body: JSON.stringify(transaction(`w4-${i}`)),
        })),
      ),
  },
  {
    name: 'W4b',
    what: 'Synthea import (transaction per patient)',
    unit: 'resources',
    kind: 'write',
    target: { perSecond: 5000 },
    load: async (target) =>
      target.synthea
        ? {
            kind: 'bundles',
            origin: target.url,
            headers: await headers(target),
            requests: (await syntheaBundles()).patients.map(({ body, resources }) => ({
              method: 'POST',
              path: '/fhir',
              body,
              resources,
            })),
          }
        : undefined,
  },
  {
    name: 'W5',
    what: 'HL7 ORU^R01 over MLLP (1 PID, 1 OBR, 10 OBX), ACK after commit',
    unit: 'messages',
    kind: 'write',
    target: { perSecond: 500 },
    load: (target) =>
      Promise.resolve(
        target.mllpPort === undefined
          ? undefined
          : {
              kind: 'mllp',
              port: target.mllpPort,
              patients: LAB_PATIENTS,
              // Runs must not repeat control ids: a resend is ACKed without being processed.
              tag: `${target.name}-${Date.now().toString(36)}`,
            },
      ),
  },
  {
    name: 'W6',
    what: 'mix: 70 % read, 20 % search, 10 % create',
    unit: 'req',
    kind: 'read',
    load: (target) => http(target, mix(target)),
  },
];

/**
 * Runs one load in bench/load-client.js; the spec goes through a file (bodies are large). Also
 * measures this process's CPU time over the measured run (the services run here, the load does
 * not), per operation answered: what an operation costs the service's own thread, which bounds
 * its throughput when that thread, not PostgreSQL, is the busier.
 */
export async function runLoad(dir: string, spec: LoadSpec): Promise<LoadResult> {
  const client = fileURLToPath(new URL('./load-client.js', import.meta.url));
  const file = join(dir, 'load-spec.json');
  await writeFile(file, JSON.stringify(spec));
  const child = spawn(process.execPath, [client, file], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  let measuredFrom: NodeJS.CpuUsage | undefined;
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
    if (!measuredFrom && stderr.split('\n').includes(MEASURING)) measuredFrom = process.cpuUsage();
  });
  const [code] = (await once(child, 'close')) as [number | null];
  const cpu = measuredFrom ? process.cpuUsage(measuredFrom) : undefined;
  if (code !== 0) throw new Error(`The load client failed (${code}): ${stderr.trim()}`);
  const result = JSON.parse(stdout) as LoadResult;
  if (cpu && result.answered > 0) {
    result.serviceCpuMicros = (cpu.user + cpu.system) / result.answered;
  }
  return result;
}
