import { jest } from '@jest/globals';
import { Logger } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { DataSource } from 'typeorm';
import { MllpListener } from '../../src/hl7/mllp/mllp-listener.js';
import { tokenFor } from '../support/auth.js';
import { withEnv } from '../support/env.js';
import { eventually } from '../support/faults.js';
import { authorizedHttp } from '../support/http.js';
import { msaOf, MllpTestClient } from '../support/mllp.js';
import { createTestApp, type TestApp } from '../support/test-app.js';

/**
 * What a deployment sets for its feeds. Most HL7 v2 feeds send local times without a UTC
 * offset: with HL7_TIME_ZONE naming the senders' zone (and HL7_FACILITY_TIME_ZONES the zones of
 * facilities elsewhere), such a time keeps its time of day, at the offset of its date (daylight
 * saving included), and an appointment so timed can be booked. A feed sends message types a
 * deployment does not want, and an AR would stop the sender's queue: HL7_IGNORE acknowledges
 * them (AA) and keeps them, unmapped, for a reprocess later. A frame begun must end within
 * HL7_MLLP_FRAME_TIMEOUT_MS (short here), however its bytes trickle in.
 */
const FRAME_TIMEOUT_MS = 3000;
/** Small, for the tests of them: every other message here is a few hundred bytes. */
const MAX_CONNECTIONS = 5;
const MAX_FRAME_BYTES = 64 * 1024;
const BUFFER_BYTES = 128 * 1024;

describe('HL7 v2 feed settings: time zones, types acknowledged unmapped', () => {
  let restoreEnv: () => void;
  let testApp: TestApp;
  let sender: MllpTestClient;

  beforeAll(async () => {
    restoreEnv = withEnv({
      HL7_TIME_ZONE: 'America/Chicago',
      HL7_FACILITY_TIME_ZONES: 'EASTCLINIC=America/New_York, 2.16.77=Asia/Kolkata',
      // A whole type, and every event of a message code (in lower case: codes are matched as
      // HL7 writes them).
      HL7_IGNORE: 'ADT^A29, dft',
      // Production's default, set here where NODE_ENV is test.
      HL7_PROCESSING_IDS: 'P',
      // Short, for the test of it: every other message here goes in one write.
      HL7_MLLP_FRAME_TIMEOUT_MS: String(FRAME_TIMEOUT_MS),
      HL7_MLLP_MAX_CONNECTIONS: String(MAX_CONNECTIONS),
      HL7_MAX_FRAME_BYTES: String(MAX_FRAME_BYTES),
      HL7_MLLP_BUFFER_BYTES: String(BUFFER_BYTES),
    });
    testApp = await createTestApp();
    sender = await MllpTestClient.connect(testApp.app.get(MllpListener).address()!.port);
  });

  afterAll(async () => {
    sender.close();
    await testApp.close();
    restoreEnv();
  });

  it("places results and appointments at the offset their date has in the senders' zone", async () => {
    const tag = randomUUID().slice(0, 8);
    const head = (type: string, control: string) =>
      [
        `MSH|^~\\&|LAB|HOSP|CV|CV|20250101||${type}|${control}-${tag}|P|2.5`,
        `PID|1||TZ-${tag}^^^HOSP&2.16.22&ISO^MR||Zone^Pat`,
      ].join('\r');
    await sender.send([
      Buffer.from(
        `${head('ORU^R01', 'Z1')}\rOBR|1||W-${tag}^LAB^2.16.22^ISO|2345-7^Glucose^LN|||202501100930` +
          `\rOBX|1|NM|2345-7^Glucose^LN||5.4|mmol/L^^UCUM|||||F|||202501100930` +
          `\rOBR|2||S-${tag}^LAB^2.16.22^ISO|2345-7^Glucose^LN|||202507100930` +
          `\rOBX|1|NM|2345-7^Glucose^LN||6.1|mmol/L^^UCUM|||||F|||202507100930`,
      ),
      Buffer.from(
        `${head('SIU^S12', 'Z2')}\rSCH||A-${tag}^SCHED^2.16.22^ISO|||||ROUTINE||30|min|` +
          `||||||||||||||Booked\rTQ1|||||||202503101000`,
      ),
    ]);
    const acks = await sender.waitForAcks(2);
    expect(acks.map((ack) => msaOf(ack).code)).toEqual(['AA', 'AA']);
    const http = authorizedHttp(await tokenFor(testApp, 'doctor'));
    const patients = await http(
      'GET',
      `${testApp.url}/fhir/Patient?identifier=${encodeURIComponent(`urn:oid:2.16.22|TZ-${tag}`)}`,
    );
    const patientId = String(patients.body.entry[0].resource.id);
    const results = await http(
      'GET',
      `${testApp.url}/fhir/Observation?subject=Patient/${patientId}&_sort=date`,
    );
    expect(
      results.body.entry.map(
        (e: { resource: { effectiveDateTime: string } }) => e.resource.effectiveDateTime,
      ),
    ).toEqual(['2025-01-10T09:30:00-06:00', '2025-07-10T09:30:00-05:00']);
    const appointments = await http(
      'GET',
      `${testApp.url}/fhir/Appointment?identifier=${encodeURIComponent(`urn:oid:2.16.22|A-${tag}`)}`,
    );
    expect(appointments.body.entry[0].resource).toMatchObject({
      status: 'booked',
      start: '2025-03-10T10:00:00-05:00',
      end: '2025-03-10T10:30:00-05:00',
    });
  });

  it('places the times of a facility in another zone at its own offset (HL7_FACILITY_TIME_ZONES)', async () => {
    const tag = randomUUID().slice(0, 8);
    // By MSH-4's namespace (in any case), by its universal id, and a facility not listed.
    const oru = (control: string, facility: string) =>
      Buffer.from(
        [
          `MSH|^~\\&|LAB|${facility}|CV|CV|20250101||ORU^R01|${control}-${tag}|P|2.5`,
          `PID|1||FZ-${tag}^^^HOSP&2.16.23&ISO^MR||Zone^Pat`,
          `OBR|1||${control}-${tag}^LAB^2.16.23^ISO|2345-7^Glucose^LN|||202501100930`,
          'OBX|1|NM|2345-7^Glucose^LN||5.4|mmol/L^^UCUM|||||F|||202501100930',
        ].join('\r'),
      );
    await sender.send([
      oru('E', 'EastClinic'),
      oru('K', 'CLINIC^2.16.77^ISO'),
      oru('C', 'WESTCLINIC'),
    ]);
    const acks = await sender.waitForAcks(5);
    expect(acks.slice(2).map((ack) => msaOf(ack).code)).toEqual(['AA', 'AA', 'AA']);
    const http = authorizedHttp(await tokenFor(testApp, 'doctor'));
    const reports = await http(
      'GET',
      `${testApp.url}/fhir/DiagnosticReport?code=${encodeURIComponent('http://loinc.org|2345-7')}&_count=100`,
    );
    const effective = new Map(
      (reports.body.entry as { resource: Record<string, any> }[])
        .filter((e) => String(e.resource['identifier'][0].value).endsWith(tag))
        .map((e) => [e.resource['identifier'][0].value, e.resource['effectiveDateTime']]),
    );
    expect(effective).toEqual(
      new Map([
        [`E-${tag}`, '2025-01-10T09:30:00-05:00'],
        [`K-${tag}`, '2025-01-10T09:30:00+05:30'],
        [`C-${tag}`, '2025-01-10T09:30:00-06:00'],
      ]),
    );
  });

  it('answers AA for the types HL7_IGNORE names, keeps them as ignored, and maps one on reprocess', async () => {
    const tag = randomUUID().slice(0, 8);
    const message = (type: string, control: string, ...segments: string[]) =>
      Buffer.from(
        [
          `MSH|^~\\&|BILLING|HOSP|CV|CV|20250101||${type}|${control}-${tag}|P|2.5`,
          `PID|1||IGN-${tag}^^^HOSP&2.16.28&ISO^MR||Ignore^Pat`,
          ...segments,
        ].join('\r'),
      );
    const charge = message(
      'DFT^P03',
      'I3',
      `FT1|1|T-${tag}||20250110||CG|71045^Xray exam chest 1 view^C4|||1|100&USD`,
    );
    const steps = [
      message('ADT^A28', 'I1'),
      message('ADT^A29', 'I2'),
      charge,
      message('ADT^A29', 'I2'), // a resend: the same answer, stored once
      message('ADT^A45', 'I4'), // not named: mapped (no MRG, so AE) as without HL7_IGNORE
    ];
    const own = await MllpTestClient.connect(testApp.app.get(MllpListener).address()!.port);
    await own.send(steps);
    const acks = await own.waitForAcks(steps.length);
    own.close();
    expect(acks.map((ack) => msaOf(ack).code)).toEqual(['AA', 'AA', 'AA', 'AA', 'AE']);
    const data = testApp.app.get(DataSource);
    const stored = await data.query<{ control_id: string; status: string }[]>(
      `SELECT control_id, status FROM hl7_message WHERE control_id LIKE $1 ORDER BY control_id`,
      [`%-${tag}`],
    );
    expect(stored.map((row) => [row.control_id, row.status])).toEqual([
      [`I1-${tag}`, 'processed'],
      [`I2-${tag}`, 'ignored'],
      [`I3-${tag}`, 'ignored'],
      [`I4-${tag}`, 'error'],
    ]);
    // Audited as accepted, and listed for whoever looks after the feed.
    const [audit] = await data.query<{ outcome: string; detail: string }[]>(
      `SELECT a.outcome, a.detail FROM audit_event a JOIN hl7_message m ON a.request_id = m.id::text
        WHERE m.control_id = $1`,
      [`I2-${tag}`],
    );
    expect(audit).toEqual({ outcome: 'success', detail: 'AA ignored' });
    const integration = authorizedHttp(await tokenFor(testApp, 'integration'));
    const listed = await integration('GET', `${testApp.url}/hl7/messages?status=ignored`);
    const ignored = (
      listed.body as { id: string; controlId: string; messageType: string }[]
    ).filter((row) => row.controlId.endsWith(tag));
    expect(ignored.map((row) => row.messageType).sort()).toEqual(['ADT^A29', 'DFT^P03']);
    // Nothing was mapped from the charge; a reprocess (once the deployment wants charges) does.
    const billing = authorizedHttp(await tokenFor(testApp, 'billing'));
    const chargeItems = () =>
      billing(
        'GET',
        `${testApp.url}/fhir/ChargeItem?identifier=${encodeURIComponent(`urn:carevault:v2:assigning-authority:HOSP|T-${tag}`)}`,
      );
    expect((await chargeItems()).body.entry ?? []).toHaveLength(0);
    const dft = ignored.find((row) => row.messageType === 'DFT^P03')!;
    const reprocessed = await integration(
      'POST',
      `${testApp.url}/hl7/messages/${dft.id}/reprocess`,
    );
    expect(reprocessed.body).toMatchObject({ status: 'processed', ackCode: 'AA' });
    expect((await chargeItems()).body.entry).toHaveLength(1);
  });

  it('refuses training and debugging messages (AR, ERR 202) where HL7_PROCESSING_IDS says P', async () => {
    const tag = randomUUID().slice(0, 8);
    const message = (processing: string, control: string) =>
      Buffer.from(
        [
          `MSH|^~\\&|ADT|HOSP|CV|CV|20250101||ADT^A04|${control}-${tag}|${processing}|2.5`,
          `PID|1||PT-${tag}^^^HOSP&2.16.29&ISO^MR||Training^Tess`,
          `PV1|1|O`,
        ].join('\r'),
      );
    const own = await MllpTestClient.connect(testApp.app.get(MllpListener).address()!.port);
    await own.send([message('T', 'T1'), message('D^T', 'T2'), message('P', 'T3')]);
    const acks = await own.waitForAcks(3);
    own.close();
    expect(acks.map((ack) => msaOf(ack).code)).toEqual(['AR', 'AR', 'AA']);
    expect(acks[0]).toMatch(/\rERR\|\|\|202\^Unsupported processing id\^HL70357\|E\|/);
    const data = testApp.app.get(DataSource);
    const stored = await data.query<{ control_id: string; status: string; error_code: string }[]>(
      `SELECT control_id, status, error_code FROM hl7_message WHERE control_id LIKE $1 ORDER BY control_id`,
      [`%-${tag}`],
    );
    expect(stored.map((row) => [row.status, row.error_code])).toEqual([
      ['rejected', '202'],
      ['rejected', '202'],
      ['processed', null],
    ]);
    // The training message made no record: the one patient is the production message's.
    const http = authorizedHttp(await tokenFor(testApp, 'doctor'));
    const patients = await http(
      'GET',
      `${testApp.url}/fhir/Patient?identifier=${encodeURIComponent(`urn:oid:2.16.29|PT-${tag}`)}&_summary=count`,
    );
    expect(patients.body.total).toBe(1);
  });

  it('answers AA to the resend of a message refused before HL7_IGNORE named its type', async () => {
    // The case HL7_IGNORE is for: a sender's queue stopped at an AR, resending it until it is
    // acknowledged. Set once the AR has gone out, the list must unstop that queue.
    const message = Buffer.from(
      [
        `MSH|^~\\&|REG|HOSP|CV|CV|20250101||ADT^A29|STUCK-${randomUUID().slice(0, 8)}|P|2.5`,
        'PID|1||STUCK-1^^^HOSP&2.16.29&ISO^MR||Stuck^Pat',
      ].join('\r'),
    );
    const own = await MllpTestClient.connect(testApp.app.get(MllpListener).address()!.port);
    await own.send([message]);
    await own.waitForAcks(1);
    const data = testApp.app.get(DataSource);
    const [row] = await data.query<{ id: string }[]>(
      `SELECT id FROM hl7_message WHERE control_id = $1`,
      [message.toString().split('|')[9]],
    );
    // As it was stored before the list named its type.
    await data.query(
      `UPDATE hl7_message SET status = 'rejected', ack_code = 'AR', error_code = '201',
         error_text = 'Unsupported event code' WHERE id = $1`,
      [row!.id],
    );
    await own.send([message]);
    const [ack] = await own.waitForAcks(2).then((acks) => acks.slice(1));
    own.close();
    expect(msaOf(ack!).code).toBe('AA');
    const [after] = await data.query<{ status: string }[]>(
      `SELECT status FROM hl7_message WHERE id = $1`,
      [row!.id],
    );
    expect(after).toEqual({ status: 'ignored' });
  });

  it('closes a connection whose frame does not end in HL7_MLLP_FRAME_TIMEOUT_MS, saying why', async () => {
    const warned = jest.spyOn(Logger.prototype, 'warn');
    const port = testApp.app.get(MllpListener).address()!.port;
    const slow = await MllpTestClient.connect(port);
    // A byte every 200 ms: never idle (HL7_IDLE_SECONDS is 300), never a whole frame.
    await slow.write(Buffer.from('\x0bMSH|^~\\&|SLOW|HOSP|CV|CV|20250101||ADT^A28|'));
    const trickle = setInterval(() => {
      if (!slow.closed) slow.socket.write('9');
    }, 200);
    try {
      // Far longer than the deadline, far shorter than the idle timeout.
      await slow.waitForClose(120_000);
    } finally {
      clearInterval(trickle);
    }
    expect(slow.acks).toEqual([]);
    const reasons = warned.mock.calls.filter(([, message]) =>
      /not completed in time/.test(`${message}`),
    );
    warned.mockRestore();
    expect(reasons).toEqual([
      [
        { peer: expect.any(String), limitMs: FRAME_TIMEOUT_MS },
        'MLLP frame not completed in time: connection closed',
      ],
    ]);
    // The log says who and why, never what the frame held.
    expect(JSON.stringify(reasons)).not.toMatch(/SLOW|MSH|999/);

    // The deadline is a frame's: a connection quiet between frames, for longer, stays open.
    const tag = randomUUID().slice(0, 8);
    const admission = (control: string) =>
      Buffer.from(
        [
          `MSH|^~\\&|ADT|HOSP|CV|CV|20250101||ADT^A28|${control}-${tag}|P|2.5`,
          `PID|1||FT-${tag}^^^HOSP&2.16.29&ISO^MR||Frame^Pat`,
        ].join('\r'),
      );
    const quiet = await MllpTestClient.connect(port);
    await quiet.send([admission('F1')]);
    await quiet.waitForAcks(1);
    await new Promise((resolve) => setTimeout(resolve, 2 * FRAME_TIMEOUT_MS));
    await quiet.send([admission('F2')]);
    const acks = await quiet.waitForAcks(2);
    quiet.close();
    expect(acks.map((ack) => msaOf(ack).code)).toEqual(['AA', 'AA']);
  }, 180_000);

  it('holds at most HL7_MLLP_MAX_CONNECTIONS connections, and HL7_MLLP_BUFFER_BYTES of frames for all', async () => {
    const warned = jest.spyOn(Logger.prototype, 'warn');
    const listener = testApp.app.get(MllpListener);
    const port = listener.address()!.port;
    const server = listener['server']!;
    const open = () =>
      new Promise<number>((resolve, reject) =>
        server.getConnections((error, count) => (error ? reject(error) : resolve(count))),
      );
    // Only the suite's own sender is left from the tests before.
    await eventually('earlier connections closed', async () => (await open()) === 1);
    const tag = randomUUID().slice(0, 8);
    const message = (control: string) =>
      Buffer.from(
        [
          `MSH|^~\\&|ADT|HOSP|CV|CV|20250101||ADT^A28|${control}-${tag}|P|2.5`,
          `PID|1||CAP-${tag}^^^HOSP&2.16.29&ISO^MR||Cap^Pat`,
        ].join('\r'),
      );
    const held: MllpTestClient[] = [];
    try {
      for (let i = 1; i < MAX_CONNECTIONS; i++) {
        const client = await MllpTestClient.connect(port);
        held.push(client);
        await client.send([message(`C${i}`)]);
        await client.waitForAcks(1);
      }
      const refused = await MllpTestClient.connect(port);
      await refused.waitForClose();
      expect(refused.acks).toEqual([]);

      // Frames begun and not ended, each under the frame limit, together over the budget: the
      // connection that takes the total past it is closed; the others keep theirs.
      const part = Buffer.concat([Buffer.of(0x0b), Buffer.alloc(50 * 1024, 'x')]);
      await held[0]!.write(part);
      await held[1]!.write(part);
      await held[2]!.write(part);
      await held[2]!.waitForClose();
      expect(held[0]!.closed).toBe(false);
      expect(held[1]!.closed).toBe(false);
      // Once those frames are gone, a whole message is taken again.
      held[0]!.close();
      held[1]!.close();
      await eventually('the partial frames released', async () => (await open()) <= 2);
      const next = await MllpTestClient.connect(port);
      held.push(next);
      await next.send([message('AFTER')]);
      expect((await next.waitForAcks(1)).map((ack) => msaOf(ack).code)).toEqual(['AA']);
    } finally {
      for (const client of held) client.close();
    }
    const reasons = warned.mock.calls
      .filter(([, text]) => /too many open|over the limit/.test(`${text}`))
      .map(([fields, text]) => [(fields as { limit: number }).limit, text]);
    warned.mockRestore();
    expect(reasons).toEqual([
      [MAX_CONNECTIONS, 'MLLP connection refused: too many open'],
      [BUFFER_BYTES, 'MLLP frames held by all connections over the limit: connection closed'],
    ]);
  }, 120_000);
});
