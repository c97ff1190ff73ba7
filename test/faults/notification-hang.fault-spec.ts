import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cliUserToken, eventually, faultEnv } from '../support/faults.js';
import { authorizedHttp } from '../support/http.js';
import { startService, type RunningService } from '../support/process.js';
import { createScratchDatabase, type ScratchDatabase } from '../support/scratch-database.js';

/** The notifier gives up on an endpoint's answer after this long (SEND_TIMEOUT_MS). */
const SEND_TIMEOUT_MS = 10_000;
const LOINC = 'http://loinc.org';

/**
 * An instance that hangs (a frozen process, a network cut from the database) while it sends a
 * Subscription notification holds that notification's row lock, and with it the Subscription's
 * queue: another instance must send it once PostgreSQL ends the hung session, not when its TCP
 * keepalive gives up (two hours by default after a network cut; never while a frozen process's
 * host answers the keepalives, as this test's SIGSTOP leaves it).
 */
describe('an instance that hangs while it sends a Subscription notification', () => {
  let database: ScratchDatabase;
  let dataDir: string;
  const services: RunningService[] = [];
  /** When each notification reached the receiver. */
  const received: number[] = [];
  /** Whether the receiver answers; until then it keeps every request waiting. */
  let answering = false;
  const waiting: ServerResponse[] = [];
  const receiver = createServer((request, response) => {
    request.resume();
    request.on('end', () => {
      received.push(Date.now());
      if (answering) response.writeHead(204).end();
      else waiting.push(response);
    });
  });

  beforeAll(async () => {
    database = await createScratchDatabase();
    dataDir = await mkdtemp(join(tmpdir(), 'carevault-fault-notification-'));
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  });

  afterAll(async () => {
    for (const service of services) {
      service.child.kill('SIGCONT');
      await service.stop('SIGKILL');
    }
    for (const response of waiting) response.destroy();
    receiver.closeAllConnections();
    await new Promise((resolve) => receiver.close(resolve));
    await database.drop();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('lets another instance send the notification once the hung one has held it past its send', async () => {
    const hooks = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hooks/`;
    const env = faultEnv(database.url, dataDir, {
      SUBSCRIPTION_ENDPOINTS: hooks,
      SUBSCRIPTION_POLL_MS: '100',
      SUBSCRIPTION_RETRY_MS: '100',
    });
    const first = await startService(env);
    services.push(first);
    const api = authorizedHttp(await cliUserToken(env, first.url));
    const subscription = await api('POST', `${first.url}/fhir/Subscription`, {
      body: {
        resourceType: 'Subscription',
        status: 'requested',
        reason: 'New results for the ward dashboard',
        criteria: `Observation?code=${LOINC}|2823-3`,
        channel: { type: 'rest-hook', endpoint: `${hooks}ward` },
      },
    });
    expect(subscription.status).toBe(201);
    const observation = await api('POST', `${first.url}/fhir/Observation`, {
      body: {
        resourceType: 'Observation',
        status: 'final',
        code: { coding: [{ system: LOINC, code: '2823-3' }] },
        valueQuantity: { value: 5.9, unit: 'mmol/L' },
      },
    });
    expect(observation.status).toBe(201);
    // The first instance sends, and hangs before the answer comes.
    await eventually('the notification sent', () => received.length === 1, 20_000);
    first.child.kill('SIGSTOP');
    answering = true;
    const second = await startService(env);
    services.push(second);
    // The lock is held at most the send timeout, and 10 s, without a statement.
    await eventually(
      'the notification delivered by the other instance',
      () => received.length > 1,
      SEND_TIMEOUT_MS + 10_000 + 15_000,
    );
    // Not taken over while the hung instance could still have been waiting for its answer.
    expect(received[1]! - received[0]!).toBeGreaterThan(SEND_TIMEOUT_MS);
    expect(received).toHaveLength(2);
  }, 120_000);
});
