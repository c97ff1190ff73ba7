import { mkdtemp, rm } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cliUserToken, faultEnv, labReport, patientTransaction, rssOf } from '../support/faults.js';
import { buildPatient } from '../support/factories.js';
import { authorizedHttp } from '../support/http.js';
import { msaOf, MllpTestClient } from '../support/mllp.js';
import { mllpPortOf, startService, type RunningService } from '../support/process.js';
import { createScratchDatabase, type ScratchDatabase } from '../support/scratch-database.js';

const IDLE = 1000;
const SLOW = 50;
const MLLP_IDLE_SECONDS = 5;

function open(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => {
      // The server may cut these connections; that is its right, not a test failure.
      socket.on('error', () => undefined);
      resolve(socket);
    });
    socket.once('error', reject);
  });
}

describe('slow clients and many idle connections', () => {
  let database: ScratchDatabase;
  let dataDir: string;
  let service: RunningService;
  const sockets: Socket[] = [];
  const timers: NodeJS.Timeout[] = [];

  beforeAll(async () => {
    database = await createScratchDatabase();
    dataDir = await mkdtemp(join(tmpdir(), 'carevault-fault-slow-'));
  });

  afterAll(async () => {
    for (const timer of timers) clearInterval(timer);
    for (const socket of sockets) socket.destroy();
    await service?.stop('SIGTERM');
    await database.drop();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('serves other clients with bounded memory, and drops idle MLLP connections', async () => {
    const env = faultEnv(database.url, dataDir, { HL7_IDLE_SECONDS: String(MLLP_IDLE_SECONDS) });
    service = await startService(env);
    const token = await cliUserToken(env, service.url);
    const api = authorizedHttp(token);
    const httpPort = Number(new URL(service.url).port);
    const mllpPort = mllpPortOf(service);
    // Something to read, and a warm service, before the baseline is taken.
    for (let i = 0; i < 20; i++) {
      expect(
        (await api('POST', `${service.url}/fhir`, { body: patientTransaction(`SLOW-${i}`, 2) }))
          .status,
      ).toBe(200);
    }
    const baseline = await rssOf(service);

    // Idle connections that never send a byte, on both listeners.
    const idleMllp: Socket[] = [];
    for (let i = 0; i < IDLE; i++) {
      sockets.push(await open(httpPort));
      const mllp = await open(mllpPort);
      idleMllp.push(mllp);
      sockets.push(mllp);
    }
    const closedMllp = idleMllp.map(
      (socket) => new Promise<void>((resolve) => socket.once('close', () => resolve())),
    );
    // Slowloris: requests and frames that trickle in a byte at a time and never finish.
    for (let i = 0; i < SLOW; i++) {
      const http = await open(httpPort);
      http.write('GET /fhir/metadata HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ');
      const mllp = await open(mllpPort);
      mllp.write(Buffer.concat([Buffer.from([0x0b]), Buffer.from('MSH|^~\\&|SLOW|')]));
      sockets.push(http, mllp);
      timers.push(
        setInterval(() => {
          http.write('a');
          mllp.write('b');
        }, 500),
      );
    }
    // Slow readers: ask for a large page and never read the answer.
    for (let i = 0; i < SLOW; i++) {
      const reader = await open(httpPort);
      reader.pause();
      reader.write(
        `GET /fhir/Patient?_count=1000 HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${token}\r\n\r\n`,
      );
      sockets.push(reader);
    }

    // Everyone else is served as usual, over HTTP and MLLP.
    for (let i = 0; i < 100; i++) {
      const res =
        i % 5 === 0
          ? await api('POST', `${service.url}/fhir/Patient`, { body: buildPatient() })
          : await api('GET', `${service.url}/fhir/Patient?_count=5`);
      expect(res.status).toBeLessThan(300);
    }
    const sender = await MllpTestClient.connect(mllpPort);
    const reports = Array.from({ length: 20 }, (_, i) => labReport(`SLOW-ORU-${i}`));
    await sender.send(reports);
    expect((await sender.waitForAcks(reports.length)).map((ack) => msaOf(ack).code)).toEqual(
      reports.map(() => 'AA'),
    );
    sender.close();

    // Memory stays bounded: a held connection costs kilobytes, not a buffer per byte trickled.
    const held = 2 * IDLE + 3 * SLOW;
    const growth = (await rssOf(service)) - baseline;
    expect(growth / held).toBeLessThan(64 * 1024);

    // The MLLP listener lets go of connections idle for HL7_IDLE_SECONDS.
    await Promise.all(closedMllp);
    expect(service.child.exitCode).toBeNull();
  }, 180_000);
});
