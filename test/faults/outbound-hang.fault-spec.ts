import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cliUserToken, eventually, faultEnv } from '../support/faults.js';
import { authorizedHttp } from '../support/http.js';
import { controlIdOf, MllpTestPeer } from '../support/mllp.js';
import { startService, type RunningService } from '../support/process.js';
import { createScratchDatabase, type ScratchDatabase } from '../support/scratch-database.js';

const ACK_TIMEOUT_SECONDS = 2;

/**
 * An instance that hangs (a frozen process, a network cut from the database) while it sends an
 * outbound message holds that message's row lock, and with it the destination's queue: another
 * instance must take the message over once PostgreSQL ends the hung session, not when its TCP
 * keepalive gives up (two hours by default after a network cut; never while a frozen process's
 * host answers it).
 */
describe('an instance that hangs while it sends an outbound HL7 message', () => {
  let database: ScratchDatabase;
  let dataDir: string;
  let peer: MllpTestPeer;
  const services: RunningService[] = [];

  beforeAll(async () => {
    database = await createScratchDatabase();
    dataDir = await mkdtemp(join(tmpdir(), 'carevault-fault-outbound-'));
    peer = await MllpTestPeer.start();
  });

  afterAll(async () => {
    for (const service of services) {
      service.child.kill('SIGCONT');
      await service.stop('SIGKILL');
    }
    await peer.down();
    await database.drop();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('lets another instance send the message once the hung one has held it past its send', async () => {
    const env = faultEnv(database.url, dataDir, {
      HL7_OUTBOUND: `127.0.0.1:${peer.port}`,
      HL7_OUTBOUND_ACK_TIMEOUT_SECONDS: String(ACK_TIMEOUT_SECONDS),
      HL7_OUTBOUND_RETRY_MS: '100',
      HL7_OUTBOUND_POLL_MS: '100',
    });
    const first = await startService(env);
    services.push(first);
    const api = authorizedHttp(await cliUserToken(env, first.url));
    // The first instance sends, and hangs before the answer comes.
    peer.answer = () => 'none';
    const created = await api('POST', `${first.url}/fhir/Patient`, {
      body: { resourceType: 'Patient', name: [{ family: 'Frozen', given: ['Fay'] }] },
    });
    expect(created.status).toBe(201);
    await eventually('the message sent', () => peer.frames.length === 1, 20_000);
    first.child.kill('SIGSTOP');
    const hungAt = Date.now();
    peer.answer = () => 'AA';
    const second = await startService(env);
    services.push(second);
    // The lock is held at most a connect and an ACK timeout, and 10 s, without a statement.
    await eventually(
      'the message delivered by the other instance',
      () => peer.accepted.length > 0,
      (2 * ACK_TIMEOUT_SECONDS + 10) * 1000 + 15_000,
    );
    expect(Date.now() - hungAt).toBeGreaterThan(2 * ACK_TIMEOUT_SECONDS * 1000);
    expect(peer.accepted.map(controlIdOf)).toEqual([controlIdOf(peer.frames[0]!)]);
  });
});
