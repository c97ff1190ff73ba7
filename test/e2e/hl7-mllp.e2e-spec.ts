import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DataSource } from 'typeorm';
import { decodeMessage } from '../../src/hl7/message/hl7-header.js';
import { MllpListener } from '../../src/hl7/mllp/mllp-listener.js';
import { msaOf, MllpTestClient } from '../support/mllp.js';
import { createTestApp, type TestApp } from '../support/test-app.js';

const SAMPLES = join(process.cwd(), '..', 'shared', 'hl7-samples', 'fhir-converter');
const samples = readdirSync(SAMPLES)
  .filter((file) => file.endsWith('.hl7'))
  .sort()
  .map((file) => ({ file, bytes: readFileSync(join(SAMPLES, file)) }));

describe('HL7 v2 over MLLP', () => {
  let testApp: TestApp;
  let port: number;
  let data: DataSource;
  const clients: MllpTestClient[] = [];
  const client = async (): Promise<MllpTestClient> => {
    const opened = await MllpTestClient.connect(port);
    clients.push(opened);
    return opened;
  };

  beforeAll(async () => {
    testApp = await createTestApp();
    port = testApp.app.get(MllpListener).address()!.port;
    data = testApp.app.get(DataSource);
  });

  afterAll(async () => {
    for (const opened of clients) opened.close();
    await testApp.close();
  });

  const storedCount = async (): Promise<number> =>
    (await data.query<{ n: number }[]>('SELECT count(*)::int AS n FROM hl7_message'))[0]!.n;

  it('answers every sample, pipelined on one connection in 7-byte writes, once and in order', async () => {
    const before = await storedCount();
    const sender = await client();
    await sender.send(
      samples.map((sample) => sample.bytes),
      7,
    );
    const acks = await sender.waitForAcks(samples.length);
    expect(acks.map((ack) => msaOf(ack).controlId)).toEqual(
      samples.map((sample) => decodeMessage(sample.bytes).header.controlId),
    );
    for (const ack of acks) expect(['AA', 'AE', 'AR']).toContain(msaOf(ack).code);
    expect(await storedCount()).toBe(before + samples.length);
    // Stored as PHI: the raw text is an envelope, never the message.
    const rows = await data.query<{ raw: string }[]>('SELECT raw FROM hl7_message');
    for (const row of rows) expect(row.raw).toMatch(/^cv1\./);
    // Every message is audited as coming from HL7.
    const [audited] = await data.query<{ n: number }[]>(
      `SELECT count(*)::int AS n FROM audit_event WHERE source = 'hl7'`,
    );
    expect(audited!.n).toBeGreaterThanOrEqual(samples.length);
  });

  it('answers a resend with the same ACK code and stores it once', async () => {
    const sample = samples.find((s) => s.file === 'ADT-A08-01.hl7')!;
    const sender = await client();
    const before = await storedCount();
    await sender.send([sample.bytes, sample.bytes]);
    const [first, second] = await sender.waitForAcks(2);
    expect(msaOf(second!)).toEqual(msaOf(first!));
    expect(await storedCount()).toBe(before);
  });

  it('refuses a malformed MSH-2 with AR and keeps the message', async () => {
    const sender = await client();
    const before = await storedCount();
    await sender.send([Buffer.from('MSH||A|B|C|D|20240101||ADT^A01|BAD1|P|2.5\rPID|1')]);
    const [ack] = await sender.waitForAcks(1);
    expect(msaOf(ack!).code).toBe('AR');
    expect(ack).toMatch(/\rERR\|/);
    expect(await storedCount()).toBe(before + 1);
  });

  it('closes a connection that sends an oversized frame, and keeps serving others', async () => {
    const bad = await client();
    const good = await client();
    await bad.write(
      Buffer.concat([Buffer.from([0x0b]), Buffer.alloc(17 * 1024 * 1024, 'x')]),
      1 << 20,
    );
    await bad.waitForClose();
    await good.send([samples[0]!.bytes]);
    expect(await good.waitForAcks(1)).toHaveLength(1);
  });

  it('ignores junk between frames', async () => {
    const sender = await client();
    await sender.write(Buffer.from('\r\nnoise\r\n'));
    await sender.send([samples[1]!.bytes]);
    await sender.write(Buffer.from('more noise'));
    await sender.send([samples[2]!.bytes]);
    const acks = await sender.waitForAcks(2);
    expect(acks.map((ack) => msaOf(ack).controlId)).toEqual(
      [samples[1]!, samples[2]!].map((sample) => decodeMessage(sample.bytes).header.controlId),
    );
  });
});
