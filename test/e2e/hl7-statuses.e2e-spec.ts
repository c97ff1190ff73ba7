import { randomUUID } from 'node:crypto';
import { DataSource } from 'typeorm';
import { openHl7Feed, type Hl7Feed } from '../support/hl7-feed.js';
import { msaOf } from '../support/mllp.js';

/**
 * What a feed's status fields mean once filed: a discharge and its cancellation, a result's
 * status when OBX-11 holds a code the IG leaves open or none, an order control of no table.
 */
describe('HL7 v2 statuses: visits, results and orders', () => {
  let feed: Hl7Feed;

  beforeAll(async () => {
    feed = await openHl7Feed();
  });

  afterAll(() => feed.close());

  it('takes back the discharge disposition with the discharge, and refuses A11 after A03', async () => {
    const tag = randomUUID().slice(0, 8);
    const adt = (event: string, at: string, pv1Tail = '') =>
      [
        `MSH|^~\\&|ADT|HOSP|CV|CV|${at}||ADT^${event}|${event}-${tag}|P|2.5`,
        `EVN|${event}|${at}`,
        `PID|1||S-${tag}^^^HOSP&2.16.31&ISO^MR||Status^Sam`,
        `PV1|1|I|6W^601^A^GHH||||||||||||||||V-${tag}^^^HOSP&2.16.31&ISO^VN${pv1Tail}`,
      ].join('\r');
    // PV1-36 discharge disposition 01 (home), PV1-45 the discharge time.
    const discharge = `${'|'.repeat(17)}01${'|'.repeat(9)}202503011300+0000`;
    const acks = await feed.send(
      adt('A01', '202503010900+0000'),
      adt('A03', '202503011300+0000', discharge),
      adt('A11', '202503011400+0000'),
    );
    expect(acks.map((ack) => msaOf(ack).code)).toEqual(['AA', 'AA', 'AE']);
    expect(acks[2]).toMatch(
      /ERR\|\|\|207\^[^|]*\|E\|\|\|\|A cancelled admission of a visit already discharged: cancel the discharge \(A13\) first/,
    );
    const visit = `Encounter?identifier=${encodeURIComponent(`urn:oid:2.16.31|V-${tag}`)}`;
    const finished = await feed.one(visit);
    expect(finished).toMatchObject({
      status: 'finished',
      hospitalization: {
        dischargeDisposition: { coding: [expect.objectContaining({ code: '01' })] },
      },
    });
    // Discharged: the bed is no longer where the patient is.
    expect(finished['location'].map((entry: { status: string }) => entry.status)).toEqual([
      'completed',
    ]);
    expect(msaOf((await feed.send(adt('A13', '202503011500+0000')))[0]!).code).toBe('AA');
    const reopened = await feed.one(visit);
    expect(reopened['status']).toBe('in-progress');
    expect(reopened['period']?.end).toBeUndefined();
    expect(reopened['hospitalization']?.dischargeDisposition).toBeUndefined();
    expect(reopened['location'].map((entry: { status: string }) => entry.status)).toEqual([
      'active',
    ]);
  });

  it('files a result of an open OBX-11 code as the IG leaves it, and an empty one as its report', async () => {
    const tag = randomUUID().slice(0, 8);
    const message = [
      `MSH|^~\\&|LAB|LABF|CV|CV|20250301100000||ORU^R01|R-${tag}|P|2.5.1`,
      `PID|1||R-${tag}^^^HOSP&2.16.32&ISO^MR||Result^Rae`,
      `OBR|1||F-${tag}^LAB|24331-1^Lipid panel^LN|||20250301090000${'|'.repeat(18)}P`,
      `OBX|1|NM|2093-3^Cholesterol^LN||180|mg/dL|||||N`,
      `OBX|2|NM|2571-8^Triglyceride^LN||90|mg/dL|||||O`,
      `OBX|3|NM|2085-9^HDL^LN||50|mg/dL|||||Z`,
      `OBX|4|NM|13457-7^LDL^LN||110|mg/dL`,
    ].join('\r');
    expect(msaOf((await feed.send(message))[0]!).code).toBe('AA');
    const report = await feed.one(`DiagnosticReport?identifier=F-${tag}`);
    expect(report['status']).toBe('preliminary');
    const results = await feed.search(
      `Observation?subject=${String(report['subject'].reference)}&_count=10`,
    );
    const byCode = Object.fromEntries(
      results.map((result) => [result['code'].coding[0].code, result['status']]),
    );
    // Not asked, order detail only, a local code, none: none of them a final result.
    expect(byCode).toEqual({
      '2093-3': 'cancelled',
      '2571-8': 'registered',
      '2085-9': 'unknown',
      '13457-7': 'preliminary',
    });
  });

  it('tells the sender when a repeated value (OBX-5) could not all be taken', async () => {
    const tag = randomUUID().slice(0, 8);
    const [ack] = await feed.send(
      [
        `MSH|^~\\&|LAB|LABF|CV|CV|20250301100000||ORU^R01|V-${tag}|P|2.5.1`,
        `PID|1||V-${tag}^^^HOSP&2.16.34&ISO^MR||Value^Val`,
        `OBR|1||FV-${tag}^LAB|600-7^Culture^LN|||20250301090000`,
        `OBX|1|TX|600-7^Culture^LN||Line one~Line two||||||F`,
        `OBX|2|CWE|600-7^Culture^LN||A^Alpha^L~B^Beta^L||||||F`,
      ].join('\r'),
    );
    expect(msaOf(ack!).code).toBe('AA');
    // Text lines are one text: only the coded value's repetitions are named.
    expect(ack!.split('\r').filter((segment) => segment.startsWith('ERR'))).toEqual([
      'ERR||OBX^2^5|102^Data type error^HL70357|W||||OBX-5 (observation value) in OBX #2 repeats 2 times, and an Observation holds one value: the first was taken, the others were not; send one OBX per value',
    ]);
  });

  it('takes the date of a result time with no valid time of day, and says so', async () => {
    const tag = randomUUID().slice(0, 8);
    const [ack] = await feed.send(
      [
        `MSH|^~\\&|LAB|LABF|CV|CV|20250301100000||ORU^R01|T-${tag}|P|2.5.1`,
        `PID|1||T-${tag}^^^HOSP&2.16.35&ISO^MR||Time^Tia`,
        `OBR|1||FT-${tag}^LAB|2345-7^Glucose^LN|||20250301090000`,
        `OBX|1|NM|2345-7^Glucose^LN||99|mg/dL|||||F|||20261206246000`,
      ].join('\r'),
    );
    expect(ack!.split('\r').filter((segment) => segment.startsWith('ERR'))).toEqual([
      'ERR||OBX^1^14|102^Data type error^HL70357|W||||OBX-14 (date/time of the observation) has no valid time of day: its date was taken, the time left out',
    ]);
    const report = await feed.one(`DiagnosticReport?identifier=FT-${tag}`);
    const result = await feed.one(`Observation?subject=${String(report['subject'].reference)}`);
    expect(result['effectiveDateTime']).toBe('2026-12-06');
  });

  it('files an order of an order control of no table as new, and warns its sender (ERR 103)', async () => {
    const tag = randomUUID().slice(0, 8);
    const order = (control: string, id: string) =>
      [
        `MSH|^~\\&|CPOE|HOSP|CV|CV|20250301100000||ORM^O01|${id}-${tag}|P|2.5`,
        `PID|1||O-${tag}^^^HOSP&2.16.33&ISO^MR||Order^Ola`,
        `ORC|${control}|${id}-${tag}^CPOE`,
        `OBR|1|${id}-${tag}^CPOE||71045^Xray chest^C4`,
      ].join('\r');
    const [local, known] = await feed.send(order('ZZ', 'O1'), order('NW', 'O2'));
    expect(msaOf(local!).code).toBe('AA');
    expect(local!.split('\r').filter((segment) => segment.startsWith('ERR'))).toEqual([
      'ERR||ORC^1^1|103^Table value not found^HL70357|W||||ORC-1 (order control) is not a code of HL7 table 0119: the order was filed as a new one; the rest was taken',
    ]);
    expect(known!.split('\r').filter((segment) => segment.startsWith('ERR'))).toEqual([]);
    const filed = await feed.one(
      `ServiceRequest?identifier=${encodeURIComponent(`urn:carevault:v2:assigning-authority:CPOE|O1-${tag}`)}`,
    );
    expect(filed['status']).toBe('active');
  });

  it('keeps no free text of MSH-9 in the message row or the audit trail', async () => {
    const tag = randomUUID().slice(0, 8);
    const [ack] = await feed.send(
      [
        `MSH|^~\\&|LAB|LABF|CV|CV|20250301100000||ZZZ^Zqxcanaryfam|T-${tag}|P|2.5`,
        `PID|1||T-${tag}^^^HOSP&2.16.31&ISO^MR||Type^Tia`,
      ].join('\r'),
    );
    expect(msaOf(ack!).code).toBe('AR');
    const data = feed.testApp.app.get(DataSource);
    const [row] = await data.query<{ id: string; message_type: string }[]>(
      'SELECT id, message_type FROM hl7_message WHERE control_id = $1',
      [`T-${tag}`],
    );
    expect(row!.message_type).toBe('ZZZ^unknown');
    const audited = await data.query<{ subtype: string }[]>(
      'SELECT subtype FROM audit_event WHERE request_id = $1',
      [row!.id],
    );
    expect(audited).toEqual([{ subtype: 'ZZZ^unknown' }]);
  });
});
