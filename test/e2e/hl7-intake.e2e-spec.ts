import { randomUUID } from 'node:crypto';
import { DataSource } from 'typeorm';
import { MllpListener } from '../../src/hl7/mllp/mllp-listener.js';
import { tokenFor } from '../support/auth.js';
import { authorizedHttp } from '../support/http.js';
import { msaOf, MllpTestClient } from '../support/mllp.js';
import { createTestApp, type TestApp } from '../support/test-app.js';

/** Inputs an integration team sends that the parser once took wrongly, end to end. */
describe('HL7 v2 intake, odd inputs', () => {
  let testApp: TestApp;
  let port: number;
  let data: DataSource;
  const clients: MllpTestClient[] = [];

  beforeAll(async () => {
    testApp = await createTestApp();
    port = testApp.app.get(MllpListener).address()!.port;
    data = testApp.app.get(DataSource);
  });

  afterAll(async () => {
    for (const opened of clients) opened.close();
    await testApp.close();
  });

  const adt = (type: string, controlId: string, mrn: string, family: string): string =>
    `MSH|^~\\&|ADT|HOSP|CV|CV|20240101||${type}|${controlId}|P|2.5\r` +
    `PID|1||${mrn}^^^HOSP&2.16.13&ISO^MR||${family}^Pat||19800101|F\r`;

  const familyOf = async (mrn: string): Promise<string[]> => {
    const http = authorizedHttp(await tokenFor(testApp, 'doctor'));
    const found = await http(
      'GET',
      `${testApp.url}/fhir/Patient?identifier=${encodeURIComponent(`urn:oid:2.16.13|${mrn}`)}`,
    );
    return ((found.body.entry ?? []) as { resource: { name: { family: string }[] } }[]).map(
      (entry) => entry.resource.name[0]!.family,
    );
  };

  const stored = (controlId: string): Promise<{ status: string; message_type: string }[]> =>
    data.query(`SELECT status, message_type FROM hl7_message WHERE control_id = $1`, [controlId]);

  it('answers and applies each of several files joined with their byte-order marks', async () => {
    // The second MSH hid behind its BOM: one AA for both, and the second patient never filed.
    const tag = randomUUID().slice(0, 8);
    const bom = Buffer.of(0xef, 0xbb, 0xbf);
    const joined = Buffer.concat([
      bom,
      Buffer.from(adt('ADT^A28', `${tag}-1`, `${tag}-A`, 'First')),
      bom,
      Buffer.from(adt('ADT^A28', `${tag}-2`, `${tag}-B`, 'Second')),
    ]);
    const sender = await MllpTestClient.connect(port);
    clients.push(sender);
    await sender.send([joined]);
    const [ack] = await sender.waitForAcks(1);
    const answers = ack!.split('\r').filter((segment) => segment.startsWith('MSA'));
    expect(answers).toEqual([`MSA|AA|${tag}-1|`, `MSA|AA|${tag}-2|`]);
    expect(await stored(`${tag}-2`)).toEqual([{ status: 'processed', message_type: 'ADT^A28' }]);
    expect(await familyOf(`${tag}-B`)).toEqual(['Second']);
  });

  it('processes a message type sent in lower case as the type it is stored as', async () => {
    // Stored and listed as ADT^A28 (and ignored by HL7_IGNORE=ADT^A28), it was refused as an
    // unsupported message type (AR 200): the sender's queue stopped on every message.
    const tag = randomUUID().slice(0, 8);
    const sender = await MllpTestClient.connect(port);
    clients.push(sender);
    const [ack] = await sender.exchange([adt('adt^a28^adt_a05', tag, `${tag}-L`, 'Lower')]);
    expect(msaOf(ack!)).toEqual({ code: 'AA', controlId: tag });
    expect(ack!.split('\r')[0]!.split('|')[8]).toBe('ACK^A28^ACK');
    expect(await stored(tag)).toEqual([{ status: 'processed', message_type: 'ADT^A28' }]);
    expect(await familyOf(`${tag}-L`)).toEqual(['Lower']);
  });

  it('processes a message type padded with blanks, as a fixed-width system sends it', async () => {
    // `ADT^A28 ` was refused as an unsupported event (AR 201) and stored as ADT^unknown.
    const tag = randomUUID().slice(0, 8);
    const sender = await MllpTestClient.connect(port);
    clients.push(sender);
    const [ack] = await sender.exchange([adt('ADT^A28 ', tag, `${tag}-P`, 'Padded')]);
    expect(msaOf(ack!)).toEqual({ code: 'AA', controlId: tag });
    expect(await stored(tag)).toEqual([{ status: 'processed', message_type: 'ADT^A28' }]);
    expect(await familyOf(`${tag}-P`)).toEqual(['Padded']);
  });

  it('files the patient of a PID that a byte-order mark preceded', async () => {
    // `\uFEFFPID` was no PID: AE 100 (the message needs a PID segment) on every resend.
    const tag = randomUUID().slice(0, 8);
    const sender = await MllpTestClient.connect(port);
    clients.push(sender);
    const text = adt('ADT^A28', tag, `${tag}-M`, 'Marked').replace('\rPID', '\r\uFEFFPID');
    const [ack] = await sender.exchange([text]);
    expect(msaOf(ack!)).toEqual({ code: 'AA', controlId: tag });
    expect(await familyOf(`${tag}-M`)).toEqual(['Marked']);
  });

  it('takes a message with a stray end block (0x1C) inside it whole, not cut there', async () => {
    // Cut at the 0x1C, its first part (MSH and ZXX) was stored and answered, AE for want of a
    // PID, and the PID after it was dropped as bytes between frames.
    const tag = randomUUID().slice(0, 8);
    const sender = await MllpTestClient.connect(port);
    clients.push(sender);
    const [head = '', pid = ''] = adt('ADT^A28', tag, `${tag}-S`, 'Stray').split('\rPID');
    const [ack] = await sender.exchange([`${head}\rZXX|a\x1cb\rPID${pid}`]);
    expect(msaOf(ack!)).toEqual({ code: 'AA', controlId: tag });
    expect(await familyOf(`${tag}-S`)).toEqual(['Stray']);
  });

  it('takes a message with a stray start block (0x0B) inside it whole, and answers it', async () => {
    // Taken as a new frame, it dropped the message up to it, unanswered, and refused the rest
    // as a message without MSH: an AR naming no message, so the sender resent it forever.
    const tag = randomUUID().slice(0, 8);
    const sender = await MllpTestClient.connect(port);
    clients.push(sender);
    const [head = '', pid = ''] = adt('ADT^A28', tag, `${tag}-V`, 'Vertical').split('\rPID');
    const [ack] = await sender.exchange([`${head}\rZXX|a\x0bb\rPID${pid}`]);
    expect(msaOf(ack!)).toEqual({ code: 'AA', controlId: tag });
    expect(await familyOf(`${tag}-V`)).toEqual(['Vertical']);
  });

  it('answers each batch of a file over HTTP with its own BHS and BTS', async () => {
    const tag = randomUUID().slice(0, 8);
    const file = [
      `FHS|^~\\&|ADT|HOSP|CV|CV|20240101||||F-${tag}`,
      `BHS|^~\\&|ADT|HOSP|CV|CV|20240101||||B1-${tag}`,
      adt('ADT^A28', `${tag}-1`, `${tag}-1`, 'One'),
      'BTS|1',
      `BHS|^~\\&|ADT|HOSP|CV|CV|20240101||||B2-${tag}`,
      adt('ADT^A28', `${tag}-2`, `${tag}-2`, 'Two'),
      'BTS|1',
      'FTS|2',
    ].join('\r');
    const response = await fetch(`${testApp.url}/hl7/v2`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${await tokenFor(testApp, 'integration')}`,
        'content-type': 'x-application/hl7-v2+er7; charset=utf-8',
      },
      body: file,
    });
    expect(response.status).toBe(200);
    const lines = (await response.text()).split('\r');
    const shape = lines.flatMap((line) =>
      /^[BF]HS|^[BF]TS|^MSA/.test(line) ? [line.startsWith('MSA') ? line : line.slice(0, 3)] : [],
    );
    expect(shape).toEqual([
      'FHS',
      'BHS',
      `MSA|AA|${tag}-1|`,
      'BTS',
      'BHS',
      `MSA|AA|${tag}-2|`,
      'BTS',
      'FTS',
    ]);
    const referred = lines.filter((line) => /^[BF]HS/.test(line)).map((h) => h.split('|')[11]);
    expect(referred).toEqual([`F-${tag}`, `B1-${tag}`, `B2-${tag}`]);
    expect(lines).toContain('FTS|2');
  });

  it("echoes the sender's names in the ACK in the bytes they came in, whatever it was read as", async () => {
    // The ACK went out in UTF-8 unless MSH-18 said 8859/1: a Latin-1 facility read as such
    // (no MSH-18, bytes that are not UTF-8) came back as other bytes (F4 as C3 B4), and a
    // refused message's names, read as Latin-1, came back encoded twice (C3 B4 as C3 83 C2 B4).
    const token = await tokenFor(testApp, 'integration');
    const facility = (charset: string, hopital: Buffer, id: string): Buffer =>
      Buffer.concat([
        Buffer.from('MSH|^~\\&|ADT|H'),
        hopital,
        Buffer.from(`pital|CV|CV|20240101||ADT^A28|${id}|P|2.5||||||${charset}\r`),
        Buffer.from(`PID|1||${id}^^^HOSP&2.16.13&ISO^MR||Latin^Pat||19800101|F\r`),
      ]);
    const tag = randomUUID().slice(0, 8);
    const latin1 = Buffer.of(0xf4);
    const utf8 = Buffer.from('ô');
    for (const [charset, bytes, code] of [
      ['', latin1, 'AA'],
      ['8859/1', latin1, 'AA'],
      ['UNICODE UTF-8', utf8, 'AA'],
      ['', utf8, 'AA'],
      ['8859/1', utf8, 'AR'],
      ['UNICODE UTF-8', latin1, 'AR'],
    ] as const) {
      const id = `${tag}-${charset.length}-${bytes.length}`;
      const response = await fetch(`${testApp.url}/hl7/v2`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${token}`,
          'content-type': 'x-application/hl7-v2+er7',
        },
        body: facility(charset, bytes, id),
      });
      const ack = Buffer.from(await response.arrayBuffer());
      const msh = ack.subarray(0, ack.indexOf(0x0d));
      expect({
        charset,
        msh: msh.includes(Buffer.concat([Buffer.from('|H'), bytes, Buffer.from('pital|')])),
      }).toEqual({ charset, msh: true });
      expect(ack.toString('latin1')).toContain(`MSA|${code}|${id}`);
    }
  });
});
