import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { getDataSourceToken } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import { withEnv } from './env.js';
import { createTestApp, type TestApp } from './test-app.js';

/** A notification as the receiver got it. */
export interface Received {
  path: string;
  method: string;
  headers: IncomingHttpHeaders;
  body: string;
}

/**
 * How the receiver answers a notification to `path`: 204 unless told otherwise; a promise holds
 * the answer back (the notification stays in flight until it settles).
 */
export type Answer = (
  path: string,
) =>
  | { status: number; headers?: Record<string, string> }
  | Promise<{ status: number; headers?: Record<string, string> }>;

/** The app of a Subscriptions test, with the receiver its notifications may go to. */
export interface SubscriptionsTestApp {
  testApp: TestApp;
  /** `<app>/fhir` */
  fhir: string;
  db: DataSource;
  /** The receiver's URL prefix, `http://127.0.0.1:<port>/hooks/`: the allowed endpoints. */
  hooks: string;
  /** Every notification received, in order. */
  received: Received[];
  close(): Promise<void>;
}

/**
 * Starts a notification receiver on a loopback port, then the app with it as
 * SUBSCRIPTION_ENDPOINTS and a notifier fast enough for a test: polls and first retry after
 * 50 ms, given up after 3 attempts.
 */
export async function startSubscriptionsApp(
  answer: Answer = () => ({ status: 204 }),
): Promise<SubscriptionsTestApp> {
  const received: Received[] = [];
  const receiver = createServer((request, response) => {
    let body = '';
    request.on('data', (chunk: Buffer) => (body += chunk.toString()));
    request.on('end', () => {
      const path = request.url ?? '';
      received.push({ path, method: request.method ?? '', headers: request.headers, body });
      void Promise.resolve(answer(path)).then(({ status, headers = {} }) =>
        response.writeHead(status, headers).end(),
      );
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  const hooks = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hooks/`;
  const restoreEnv = withEnv({
    SUBSCRIPTION_ENDPOINTS: hooks,
    SUBSCRIPTION_POLL_MS: '50',
    SUBSCRIPTION_RETRY_MS: '50',
    SUBSCRIPTION_MAX_ATTEMPTS: '3',
  });
  let testApp: TestApp;
  try {
    testApp = await createTestApp();
  } catch (error) {
    restoreEnv();
    await closeServer(receiver);
    throw error;
  }
  return {
    testApp,
    fhir: `${testApp.url}/fhir`,
    db: testApp.app.get<DataSource>(getDataSourceToken()),
    hooks,
    received,
    close: async () => {
      await testApp.close();
      restoreEnv();
      await closeServer(receiver);
    },
  };
}

/**
 * Waits until `check` gives a value, polling, and returns it; fails with `what` after 30 seconds.
 * Deliveries follow the notifier's poll and retry timers, which a loaded machine (two Jest
 * workers, PostgreSQL and the service on two cores) stretches: a bound of ten seconds, counted
 * in polls, failed a retry schedule of 6 hits there once. (faults.ts has one for a condition,
 * over the longer times of a child process.)
 */
export async function eventually<T>(what: string, check: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

export const LOINC = 'http://loinc.org';

/** A rest-hook Subscription to the Observations of one LOINC code, sending one header. */
export function observationSubscription(
  code: string,
  endpoint: string,
  header: string,
  change: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    resourceType: 'Subscription',
    status: 'requested',
    reason: 'New results for the ward dashboard',
    criteria: `Observation?code=${LOINC}|${code}`,
    channel: { type: 'rest-hook', endpoint, header: [header] },
    ...change,
  };
}

/** A final Observation of one LOINC code, 5.4 mmol/L. */
export function loincObservation(
  code: string,
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    resourceType: 'Observation',
    status: 'final',
    code: { coding: [{ system: LOINC, code }] },
    valueQuantity: { value: 5.4, unit: 'mmol/L' },
    ...extra,
  };
}
