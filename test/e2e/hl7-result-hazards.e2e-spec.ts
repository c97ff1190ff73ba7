import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { openHl7Feed, type Hl7Feed } from '../support/hl7-feed.js';
import { msaOf } from '../support/mllp.js';

const SAMPLES = join(process.cwd(), '..', 'shared', 'hl7-samples', 'fhir-converter');
const sample = (file: string) => readFileSync(join(SAMPLES, file), 'utf8');

/**
 * A sample under a control id of its own: a lab's next message repeating what it sent before is
 * a new message, while the sample itself, sent by another spec on this worker's database, would
 * be answered as a resend and not processed again. Nothing else of it changes.
 */
const renumbered = (text: string, controlId: string) => {
  const [msh, ...rest] = text.split('\n');
  const fields = msh!.split('|');
  fields[9] = controlId;
  return [fields.join('|'), ...rest].join('\n');
};

/**
 * A clinical safety review (DCB0129-style) of the results and the patient they are filed under:
 * who may change a patient's details, what a corrected report withdraws, what an ADT repeats.
 */
describe('HL7 v2 feeds: results and the registration system of record', () => {
  let feed: Hl7Feed;

  beforeAll(async () => {
    feed = await openHl7Feed();
  });

  afterAll(() => feed.close());

  const codes = async (...messages: string[]) =>
    (await feed.send(...messages)).map((ack) => msaOf(ack).code);

  const HOSP = 'urn:oid:2.16.840.1.113883.19.41';
  const patientHolding = (system: string, value: string) =>
    feed.one(`Patient?identifier=${encodeURIComponent(`${system}|${value}`)}`);

  it("leaves a patient's details as the ADT feed corrected them when a lab sends the old ones", async () => {
    const tag = randomUUID().slice(0, 8);
    // The admission of the samples' Donald Duck, then the registration clerk's correction of
    // his name and birth date (an A08 of the same system, now).
    const admission = sample('ADT01-23.hl7');
    const now = new Date().toISOString().replace(/[-:T]/g, '').slice(0, 14);
    const correction = renumbered(admission, `A08-${tag}`)
      .replace('ADT^A01', 'ADT^A08')
      .replace('EVN|A01|20050110045502+0700', `EVN|A08|${now}+0000`)
      .replace('DUCK^DONALD^D||19241010', 'DUCK^DONALD^DEWEY||19241001');
    expect(await codes(admission, correction)).toEqual(['AA', 'AA']);
    const system = 'urn:carevault:v2:assigning-authority:1';
    const corrected = await patientHolding(system, '10006579');
    expect(corrected['name'][0].given).toEqual(['DONALD', 'DEWEY']);
    expect(corrected['birthDate']).toBe('1924-10-01');
    // The lab's result, whose PID still has the details the lab had before the correction.
    const oru = renumbered(sample('LAB-ORU-1.hl7'), `ORU-${tag}`);
    expect(await codes(oru)).toEqual(['AA']);
    const after = await patientHolding(system, '10006579');
    expect(after['id']).toBe(corrected['id']);
    expect(after['name'][0].given).toEqual(['DONALD', 'DEWEY']);
    expect(after['birthDate']).toBe('1924-10-01');
    expect(after['meta'].versionId).toBe(corrected['meta'].versionId);
    // The result is filed under him all the same.
    const reports = await feed.search(`DiagnosticReport?subject=Patient/${String(after['id'])}`);
    expect(reports.length).toBeGreaterThan(0);
  });

  it('registers a patient a lab names first, and lets only ADT change them afterwards', async () => {
    const tag = randomUUID().slice(0, 8);
    const oru = (control: string, family: string, birth: string) =>
      [
        `MSH|^~\\&|LAB|LABF|CV|CV|20261206100000+0000||ORU^R01^ORU_R01|${control}-${tag}|P|2.5.1`,
        `PID|1||L-${tag}^^^HOSP&2.16.840.1.113883.19.41&ISO^MR||${family}^Lab||${birth}|F`,
        `OBR|1||F-${control}-${tag}^LAB|2823-3^Potassium^LN|||20261206090000+0000||||||||||||||||||F`,
        'OBX|1|NM|2823-3^Potassium^LN||4.1|mmol/L|3.5-5.1|N|||F',
      ].join('\r');
    const a08 = (control: string, family: string) =>
      [
        `MSH|^~\\&|ADT|HOSP|CV|CV|20261206080000+0000||ADT^A08^ADT_A01|${control}-${tag}|P|2.5.1`,
        'EVN|A08|20261206080000+0000',
        `PID|1||L-${tag}^^^HOSP&2.16.840.1.113883.19.41&ISO^MR||${family}^Lab||19700101|F`,
      ].join('\r');
    expect(await codes(oru('L1', 'Firstlab', '19700101'))).toEqual(['AA']);
    const created = await patientHolding(HOSP, `L-${tag}`);
    expect(created['name'][0].family).toBe('Firstlab');
    expect(await codes(oru('L2', 'Otherlab', '19711111'))).toEqual(['AA']);
    const kept = await patientHolding(HOSP, `L-${tag}`);
    expect(kept['name'][0].family).toBe('Firstlab');
    expect(kept['birthDate']).toBe('1970-01-01');
    // The registration system is the one to change them.
    expect(await codes(a08('A1', 'Registered'))).toEqual(['AA']);
    expect((await patientHolding(HOSP, `L-${tag}`))['name'][0].family).toBe('Registered');
    expect(
      await feed.search(`DiagnosticReport?subject=Patient/${String(created['id'])}`),
    ).toHaveLength(2);
  });

  it('keeps an ADT observation sent as text alone once, however often the feed repeats it', async () => {
    const tag = randomUUID().slice(0, 8);
    const a08 = (control: string, hour: string) =>
      [
        `MSH|^~\\&|ADT|HOSP|CV|CV|20261206${hour}0000+0000||ADT^A08^ADT_A01|${control}-${tag}|P|2.5.1`,
        `EVN|A08|20261206${hour}0000+0000`,
        `PID|1||W-${tag}^^^HOSP&2.16.840.1.113883.19.41&ISO^MR||Weight^Wendy||19700101|F`,
        // A weight taken at admission, named by text alone, as some feeds send it.
        'OBX|1|NM|^Body weight||70|kg|||||F|||20261206073000+0000',
      ].join('\r');
    expect(await codes(a08('W1', '08'), a08('W2', '09'), a08('W3', '10'))).toEqual([
      'AA',
      'AA',
      'AA',
    ]);
    const patient = await patientHolding(HOSP, `W-${tag}`);
    const results = await feed.search(`Observation?subject=Patient/${String(patient['id'])}`);
    expect(results.map((one) => one['code'].text).sort()).toEqual(['Body weight']);
  });

  it('keeps both of two ADT observations of one text and time that one message carries', async () => {
    const tag = randomUUID().slice(0, 8);
    const a08 = (control: string, hour: string) =>
      [
        `MSH|^~\\&|ADT|HOSP|CV|CV|20261206${hour}0000+0000||ADT^A08^ADT_A01|${control}-${tag}|P|2.5.1`,
        `EVN|A08|20261206${hour}0000+0000`,
        `PID|1||N-${tag}^^^HOSP&2.16.840.1.113883.19.41&ISO^MR||Note^Nora||19700101|F`,
        // Two comment lines of one admission, one text: neither is the other.
        'OBX|1|ST|^Admission note||Arrived by ambulance||||||F|||20261206073000+0000',
        'OBX|2|ST|^Admission note||Allergic to latex per family||||||F|||20261206073000+0000',
      ].join('\r');
    expect(await codes(a08('N1', '08'))).toEqual(['AA']);
    const patient = await patientHolding(HOSP, `N-${tag}`);
    const results = await feed.search(`Observation?subject=Patient/${String(patient['id'])}`);
    expect(results.map((one) => one['valueString']).sort()).toEqual([
      'Allergic to latex per family',
      'Arrived by ambulance',
    ]);
  });

  it('keeps two ADT observations of one code at two times once each, however often they are repeated', async () => {
    const tag = randomUUID().slice(0, 8);
    const a08 = (control: string, hour: string) =>
      [
        `MSH|^~\\&|ADT|HOSP|CV|CV|20261206${hour}0000+0000||ADT^A08^ADT_A01|${control}-${tag}|P|2.5.1`,
        `EVN|A08|20261206${hour}0000+0000`,
        `PID|1||H-${tag}^^^HOSP&2.16.840.1.113883.19.41&ISO^MR||Heart^Hana||19700101|F`,
        // The heart rate taken at arrival and again an hour later: one code, two times.
        'OBX|1|NM|8867-4^Heart rate^LN||88|/min|||||F|||20261206063000+0000',
        'OBX|2|NM|8867-4^Heart rate^LN||72|/min|||||F|||20261206073000+0000',
      ].join('\r');
    expect(await codes(a08('H1', '08'), a08('H2', '09'))).toEqual(['AA', 'AA']);
    const patient = await patientHolding(HOSP, `H-${tag}`);
    const results = await feed.search(`Observation?subject=Patient/${String(patient['id'])}`);
    expect(results.map((one) => one['valueQuantity'].value).sort()).toEqual([72, 88]);
  });

  it("keeps a patient's observation of no time and no visit once, however often A31 repeats it", async () => {
    const tag = randomUUID().slice(0, 8);
    const a31 = (control: string, hour: string, ...obx: string[]) =>
      [
        `MSH|^~\\&|ADT|HOSP|CV|CV|20261206${hour}0000+0000||ADT^A31^ADT_A05|${control}-${tag}|P|2.5.1`,
        `EVN|A31|20261206${hour}0000+0000`,
        `PID|1||B-${tag}^^^HOSP&2.16.840.1.113883.19.41&ISO^MR||Blood^Bea||19700101|F`,
        ...obx,
      ].join('\r');
    // A blood type and a note of the patient, of no time and no visit: one record each.
    const standing = [
      'OBX|1|CWE|882-1^ABO and Rh group^LN||278149003^Blood group A Rh(D) positive^SCT||||||F',
      'OBX|2|ST|^Preferred pharmacy||Main Street||||||F',
    ];
    // The heart rate of one code at two times stays two records, beside the one of no time.
    const rates = [
      'OBX|3|NM|8867-4^Heart rate^LN||88|/min|||||F|||20261206063000+0000',
      'OBX|4|NM|8867-4^Heart rate^LN||72|/min|||||F|||20261206073000+0000',
      'OBX|5|NM|8867-4^Heart rate^LN||80|/min|||||F',
    ];
    expect(
      await codes(
        a31('B1', '08', ...standing, ...rates),
        a31('B2', '09', ...standing, ...rates),
        a31('B3', '10', ...standing),
      ),
    ).toEqual(['AA', 'AA', 'AA']);
    const patient = await patientHolding(HOSP, `B-${tag}`);
    const results = await feed.search(`Observation?subject=Patient/${String(patient['id'])}`);
    expect(results).toHaveLength(5);
    expect(
      results
        .filter((one) => one['code'].coding?.[0]?.code === '882-1')
        .map((one) => one['valueCodeableConcept'].coding[0].code),
    ).toEqual(['278149003']);
    expect(results.filter((one) => one['code'].text === 'Preferred pharmacy')).toHaveLength(1);
    expect(
      results
        .filter((one) => one['code'].coding?.[0]?.code === '8867-4')
        .map((one) => one['valueQuantity'].value)
        .sort(),
    ).toEqual([72, 80, 88]);
  });

  it('adds an ADT observation that several stored ones of its code and time could be, not refusing it', async () => {
    const tag = randomUUID().slice(0, 8);
    const a31 = (control: string, hour: string, ...obx: string[]) =>
      [
        `MSH|^~\\&|ADT|HOSP|CV|CV|20261206${hour}0000+0000||ADT^A31^ADT_A05|${control}-${tag}|P|2.5.1`,
        `EVN|A31|20261206${hour}0000+0000`,
        `PID|1||C-${tag}^^^HOSP&2.16.840.1.113883.19.41&ISO^MR||Comment^Cora||19700101|F`,
        ...obx,
      ].join('\r');
    // Two notes of one code and no time in one message are two; a later message of one such
    // note cannot tell which it is: it is added, as the feed's record, rather than refused.
    const note = (set: number, text: string) =>
      `OBX|${set}|ST|48767-8^Annotation^LN||${text}||||||F`;
    expect(
      await codes(
        a31('C1', '08', note(1, 'Prefers mornings'), note(2, 'Needs interpreter')),
        a31('C2', '09', note(1, 'Prefers mornings')),
      ),
    ).toEqual(['AA', 'AA']);
    const patient = await patientHolding(HOSP, `C-${tag}`);
    const results = await feed.search(`Observation?subject=Patient/${String(patient['id'])}`);
    expect(results.map((one) => one['valueString']).sort()).toEqual([
      'Needs interpreter',
      'Prefers mornings',
      'Prefers mornings',
    ]);
  });

  it('keeps a result sent as text alone before the first OBR once, however often it is sent', async () => {
    const tag = randomUUID().slice(0, 8);
    const oru = (control: string) =>
      [
        `MSH|^~\\&|LAB|LABF|CV|CV|20261206100000+0000||ORU^R01^ORU_R01|${control}-${tag}|P|2.5.1`,
        `PID|1||T-${tag}^^^HOSP&2.16.840.1.113883.19.41&ISO^MR||Text^Tim||19700101|M`,
        'OBX|1|NM|^Body weight||70|kg|||||F|||20261206073000+0000',
        `OBR|1||F-${tag}^LAB|2823-3^Potassium^LN|||20261206090000+0000||||||||||||||||||F`,
        'OBX|1|NM|2823-3^Potassium^LN||4.1|mmol/L|3.5-5.1|N|||F',
      ].join('\r');
    expect(await codes(oru('T1'), oru('T2'))).toEqual(['AA', 'AA']);
    const patient = await patientHolding(HOSP, `T-${tag}`);
    const results = await feed.search(`Observation?subject=Patient/${String(patient['id'])}`);
    expect(results.map((one) => one['code'].text).sort()).toEqual(['Body weight', 'Potassium']);
  });

  describe('a result a later version of its report no longer carries', () => {
    const report = (tag: string, control: string, hour: string, status: string, ...obx: string[]) =>
      [
        `MSH|^~\\&|LAB|LABF|CV|CV|20261206${hour}0000+0000||ORU^R01^ORU_R01|${control}-${tag}|P|2.5.1`,
        `PID|1||D-${tag}^^^HOSP&2.16.840.1.113883.19.41&ISO^MR||Dropped^Dora||19700101|F`,
        `OBR|1||F-${tag}^LAB|24320-4^Basic metabolic panel^LN|||20261206080000+0000|||||||||||||||20261206${hour}0000+0000|||${status}`,
        ...obx,
      ].join('\r');
    const glucose = (value: string, status: string) =>
      `OBX|1|NM|2345-7^Glucose^LN||${value}|mmol/L|3.9-5.5||||${status}`;
    const potassium = 'OBX|2|NM|2823-3^Potassium^LN||6.9|mmol/L|3.5-5.1|HH|||F';

    const resultsOf = async (tag: string) => {
      const patient = await patientHolding(HOSP, `D-${tag}`);
      const results = await feed.search(`Observation?subject=Patient/${String(patient['id'])}`);
      const byCode = (code: string) => results.find((one) => one['code'].coding[0].code === code)!;
      const [filed] = await feed.search(
        `DiagnosticReport?subject=Patient/${String(patient['id'])}`,
      );
      return { byCode, filed: filed!, count: results.length };
    };

    it('is withdrawn (entered in error) by a corrected report, and off the report', async () => {
      const tag = randomUUID().slice(0, 8);
      expect(
        await codes(
          report(tag, 'V1', '09', 'F', glucose('5.1', 'F'), potassium),
          // The lab's correction: the potassium was the haemolysed sample's, and is gone.
          report(tag, 'V2', '11', 'C', glucose('5.2', 'C')),
        ),
      ).toEqual(['AA', 'AA']);
      const { byCode, filed, count } = await resultsOf(tag);
      expect(count).toBe(2);
      expect(byCode('2345-7')['status']).toBe('corrected');
      expect(byCode('2823-3')['status']).toBe('entered-in-error');
      expect(filed['result']).toEqual([
        { reference: `Observation/${String(byCode('2345-7')['id'])}` },
      ]);
    });

    it('is named, by code, in a warning of the ACK of the version that withdrew it', async () => {
      const tag = randomUUID().slice(0, 8);
      const sodium = 'OBX|3|NM|2951-2^Sodium^LN||139|mmol/L|135-145||||F';
      const acks = await feed.send(
        report(tag, 'V1', '09', 'F', glucose('5.1', 'F'), potassium, sodium),
        // A lab that sends the corrected result alone under a corrected report: the others go.
        report(tag, 'V2', '11', 'C', glucose('5.2', 'C')),
        // Sent again: nothing more is withdrawn, and nothing is said.
        report(tag, 'V3', '11', 'C', glucose('5.2', 'C')),
      );
      expect(acks.map((ack) => msaOf(ack).code)).toEqual(['AA', 'AA', 'AA']);
      expect(acks[0]).not.toContain('ERR|');
      expect(acks[1]).toContain(
        'ERR||OBR^1^25|0^Message accepted^HL70357|W||||OBR-25 (result status) is C, a report sent whole: 2 results an earlier version had and this one leaves out were withdrawn (entered in error), OBX-3 2823-3, 2951-2; send again any that stand',
      );
      // Codes only: no value of a withdrawn result reaches the ACK.
      expect(acks[1]).not.toContain('6.9');
      expect(acks[1]).not.toContain('139');
      expect(acks[2]).not.toContain('ERR|');
      const { byCode } = await resultsOf(tag);
      expect(byCode('2951-2')['status']).toBe('entered-in-error');
    });

    it('stays on a report sent again with part of its results, or none', async () => {
      const tag = randomUUID().slice(0, 8);
      expect(
        await codes(
          report(tag, 'P1', '09', 'P', glucose('5.1', 'P'), potassium),
          // A lab sending what is new only: the preliminary glucose, then the report's status.
          report(tag, 'P2', '10', 'A', glucose('5.3', 'P')),
          report(tag, 'P3', '11', 'F'),
        ),
      ).toEqual(['AA', 'AA', 'AA']);
      const { byCode, filed } = await resultsOf(tag);
      expect(byCode('2823-3')['status']).toBe('final');
      expect(byCode('2345-7')['valueQuantity'].value).toBe(5.3);
      expect(filed['status']).toBe('final');
      expect(filed['result']).toEqual([
        { reference: `Observation/${String(byCode('2345-7')['id'])}` },
        { reference: `Observation/${String(byCode('2823-3')['id'])}` },
      ]);
    });
  });

  it('keeps a corrected result when its final version of no time to order by is replayed after it', async () => {
    const tag = randomUUID().slice(0, 8);
    // Local times without a UTC offset, and no HL7_TIME_ZONE here: no instant orders them.
    const result = (control: string, status: string, value: string) =>
      [
        `MSH|^~\\&|LAB|LABF|CV|CV|202612061000||ORU^R01^ORU_R01|${control}-${tag}|P|2.5.1`,
        `PID|1||H-${tag}^^^HOSP&2.16.840.1.113883.19.41&ISO^MR||Glucose^Hal||19700101|M`,
        `OBR|1||H-${tag}^LAB|2345-7^Glucose^LN|||202612060800${'|'.repeat(18)}${status}`,
        `OBX|1|NM|2345-7^Glucose^LN||${value}|mmol/L|3.9-5.5||||${status}`,
      ].join('\r');
    const acks = await feed.send(
      result('F', 'F', '5.4'),
      result('C', 'C', '6.1'),
      // The lab's queue replayed from its final version: v2 changes a final report only by a
      // correction, so a final one after the correction is the old one again.
      result('F2', 'F', '5.4'),
    );
    expect(acks.map((ack) => msaOf(ack).code)).toEqual(['AA', 'AA', 'AA']);
    expect(acks[2]).toContain('|W|');
    const patient = await patientHolding(HOSP, `H-${tag}`);
    const glucose = await feed.one(`Observation?subject=Patient/${String(patient['id'])}`);
    expect([glucose['status'], glucose['valueQuantity'].value]).toEqual(['corrected', 6.1]);
    const report = await feed.one(`DiagnosticReport?subject=Patient/${String(patient['id'])}`);
    expect(report['status']).toBe('corrected');
  });

  it("files a report withdrawn as the wrong patient's under the right one, with no time to order by", async () => {
    // Local times without a UTC offset, and no HL7_TIME_ZONE here: no instant orders them.
    const oru = (tag: string, control: string, who: string, status: string) =>
      [
        `MSH|^~\\&|LAB|LABF|CV|CV|202612061000||ORU^R01^ORU_R01|${control}-${tag}|P|2.5.1`,
        `PID|1||${who}-${tag}^^^HOSP&2.16.840.1.113883.19.41&ISO^MR||${who}^Pat||19700101|F`,
        `OBR|1||W-${tag}^LAB|2823-3^Potassium^LN|||202612060800${'|'.repeat(18)}${status === 'W' ? 'C' : status}`,
        `OBX|1|NM|2823-3^Potassium^LN||6.9|mmol/L|3.5-5.1|HH|||${status}`,
      ].join('\r');
    // The lab's correction of a wrong patient (every result withdrawn, OBX-11 W, in a corrected
    // report), then the report under the right patient: final, or preliminary as it starts over.
    for (const again of ['F', 'P']) {
      const tag = randomUUID().slice(0, 8);
      expect(
        await codes(
          oru(tag, 'W1', 'ALICE', 'F'),
          oru(tag, 'W2', 'ALICE', 'W'),
          oru(tag, 'W3', 'BOB', again),
        ),
      ).toEqual(['AA', 'AA', 'AA']);
      const bob = await patientHolding(HOSP, `BOB-${tag}`);
      const result = await feed.one(`Observation?subject=Patient/${String(bob['id'])}`);
      expect([result['status'], result['valueQuantity'].value]).toEqual([
        again === 'F' ? 'final' : 'preliminary',
        6.9,
      ]);
    }
  });

  it("keeps a patient's report the lab withdrew withdrawn when an earlier version of no time is replayed", async () => {
    // Local times without a UTC offset, and no HL7_TIME_ZONE here: no instant orders them.
    const oru = (tag: string, control: string, status: string) =>
      [
        `MSH|^~\\&|LAB|LABF|CV|CV|202612061000||ORU^R01^ORU_R01|${control}-${tag}|P|2.5.1`,
        `PID|1||HEM-${tag}^^^HOSP&2.16.840.1.113883.19.41&ISO^MR||Hem^Pat||19700101|F`,
        `OBR|1||H-${tag}^LAB|2823-3^Potassium^LN|||202612060800${'|'.repeat(18)}${status === 'W' ? 'C' : status}`,
        `OBX|1|NM|2823-3^Potassium^LN||6.9|mmol/L|3.5-5.1|HH|||${status}`,
      ].join('\r');
    // The lab withdrew the patient's own result (a haemolysed sample: OBX-11 W in a corrected
    // report), then its queue is replayed: the preliminary or final version again, last.
    for (const replayed of ['P', 'F']) {
      const tag = randomUUID().slice(0, 8);
      expect(await codes(oru(tag, 'H1', 'P'), oru(tag, 'H2', 'F'), oru(tag, 'H3', 'W'))).toEqual([
        'AA',
        'AA',
        'AA',
      ]);
      expect(await codes(oru(tag, 'H4', replayed))).toEqual(['AA']);
      const patient = await patientHolding(HOSP, `HEM-${tag}`);
      const result = await feed.one(`Observation?subject=Patient/${String(patient['id'])}`);
      expect(result['status']).toBe('entered-in-error');
    }
  });

  it('keeps a final result when a preliminary one of no time to order by is replayed after it', async () => {
    const tag = randomUUID().slice(0, 8);
    // Local times without a UTC offset, and no HL7_TIME_ZONE here: no instant orders them.
    const result = (control: string, status: string, value: string) =>
      [
        `MSH|^~\\&|LAB|LABF|CV|CV|202612061000||ORU^R01^ORU_R01|${control}-${tag}|P|2.5.1`,
        `PID|1||G-${tag}^^^HOSP&2.16.840.1.113883.19.41&ISO^MR||Glucose^Gil||19700101|M`,
        `OBR|1||F-${tag}^LAB|2345-7^Glucose^LN|||202612060800${'|'.repeat(18)}${status}`,
        `OBX|1|NM|2345-7^Glucose^LN||${value}|mmol/L|3.9-5.5||||${status}`,
      ].join('\r');
    const acks = await feed.send(
      result('P', 'P', '5.0'),
      result('F', 'F', '5.4'),
      result('C', 'C', '6.1'),
      // The lab's queue replayed: the preliminary result again, last.
      result('P2', 'P', '5.0'),
    );
    expect(acks.map((ack) => msaOf(ack).code)).toEqual(['AA', 'AA', 'AA', 'AA']);
    // Its status decided, not a time: the warning says so (it named the times until 2026-12-07).
    expect(acks[3]).toContain(
      "ERR|||0^Message accepted^HL70357|W||||Older than a message already applied to its DiagnosticReport (by the report's status, OBR-25, as no time zone orders their times): what the newer message set there was kept; the rest was taken",
    );
    expect(acks[3]).not.toContain('EVN-2');
    const patient = await patientHolding(HOSP, `G-${tag}`);
    const glucose = await feed.one(`Observation?subject=Patient/${String(patient['id'])}`);
    expect(glucose['status']).toBe('corrected');
    expect(glucose['valueQuantity'].value).toBe(6.1);
    const report = await feed.one(`DiagnosticReport?subject=Patient/${String(patient['id'])}`);
    expect(report['status']).toBe('corrected');
  });
});
