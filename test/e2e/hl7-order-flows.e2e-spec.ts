import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DataSource } from 'typeorm';
import { openHl7Feed, type Hl7Feed } from '../support/hl7-feed.js';
import { msaOf } from '../support/mllp.js';

const SAMPLES = join(process.cwd(), '..', 'shared', 'hl7-samples', 'fhir-converter');

/**
 * A shared sample as sent, but for its control id and the `replaced` strings (its order numbers
 * and patient, kept apart from other specs' on this worker's database).
 */
const sample = (file: string, controlId: string, replaced: [string, string][]) => {
  const [msh, ...rest] = readFileSync(join(SAMPLES, file), 'utf8').split('\n');
  const fields = msh!.split('|');
  fields[9] = controlId;
  return replaced.reduce(
    (text, [from, to]) => text.replaceAll(from, to),
    [fields.join('|'), ...rest].join('\n'),
  );
};

/**
 * Order flows end to end, as an orders interface engineer sends them: a CPOE's orders, a lab's
 * results for them and a pharmacy's prescriptions, over MLLP, read back over FHIR.
 */
describe('HL7 v2 order flows: orders, their changes and their results', () => {
  let feed: Hl7Feed;

  beforeAll(async () => {
    feed = await openHl7Feed();
  });

  afterAll(() => feed.close());

  const CPOE = 'urn:carevault:v2:assigning-authority:CPOE';
  const LAB = 'urn:carevault:v2:assigning-authority:LAB';
  const pid = (tag: string, mrn: string) =>
    `PID|1||${mrn}-${tag}^^^HOSP&2.16.840.1.113883.19.77&ISO^MR||Order^Olga||19700101|F`;
  const message =
    (type: string, sender: string) =>
    (tag: string, control: string, mrn: string, ...segments: string[]) =>
      [
        `MSH|^~\\&|${sender}|HOSP|CV|CV|202503010800||${type}|${control}-${tag}|P|2.5`,
        pid(tag, mrn),
        ...segments,
      ].join('\r');
  const orm = message('ORM^O01', 'CPOE');
  const oru = message('ORU^R01', 'LAB');
  const codes = async (...messages: string[]) =>
    (await feed.send(...messages)).map((ack) => msaOf(ack).code);
  const numbered = (type: string, system: string, value: string) =>
    feed.search(`${type}?identifier=${encodeURIComponent(`${system}|${value}`)}`);
  const patientOf = async (tag: string, mrn: string) =>
    (
      await feed.one(
        `Patient?identifier=${encodeURIComponent(`urn:oid:2.16.840.1.113883.19.77|${mrn}-${tag}`)}`,
      )
    )['id'] as string;

  /** A lab's glucose result for the order `placer`, under its filler number `filler`. */
  const glucose = (tag: string, control: string, mrn: string, placer: string, filler: string) =>
    oru(
      tag,
      control,
      mrn,
      `ORC|RE|${placer}^CPOE|${filler}^LAB`,
      `OBR|1|${placer}^CPOE|${filler}^LAB|2345-7^Glucose^LN|||202503010900+0000||||||||||||||202503011000+0000|||F`,
      'OBX|1|NM|2345-7^Glucose^LN||5.4|mmol/L^mmol/L^UCUM|||||F',
    );

  it("ties a result to its patient's order, never to another patient's of that number", async () => {
    const tag = randomUUID().slice(0, 8);
    const order = `W1-${tag}`;
    // Placed on the wrong patient and cancelled; placed again on the right one.
    expect(
      await codes(
        orm(tag, 'W1', 'WA', `ORC|NW|${order}^CPOE`, 'OBR|1|||2345-7^Glucose^LN'),
        orm(tag, 'W2', 'WA', `ORC|CA|${order}^CPOE`, 'OBR|1|||2345-7^Glucose^LN'),
        orm(tag, 'W3', 'WB', `ORC|NW|${order}^CPOE`, 'OBR|1|||2345-7^Glucose^LN'),
      ),
    ).toEqual(['AA', 'AA', 'AA']);
    const right = await patientOf(tag, 'WB');
    const [placed] = (await numbered('ServiceRequest', CPOE, order)).filter(
      (request) => request['subject'].reference === `Patient/${right}`,
    );
    // Until 2026-12-07 the two orders of that number made the result an AE (FHIR 412): the
    // right patient's glucose was not filed.
    expect(await codes(glucose(tag, 'W4', 'WB', order, `L1-${tag}`))).toEqual(['AA']);
    const report = (await numbered('DiagnosticReport', LAB, `L1-${tag}`))[0]!;
    expect(report['basedOn']).toEqual([{ reference: `ServiceRequest/${placed!['id']}` }]);
    const [result] = await feed.search(`Observation?subject=Patient/${right}`);
    expect(result!['basedOn']).toEqual([{ reference: `ServiceRequest/${placed!['id']}` }]);
    // So is an appointment booked for it (SCH-26), which the two orders also made an AE.
    const siu = [
      `MSH|^~\\&|SCHED|HOSP|CV|CV|202503011100||SIU^S12|W6-${tag}|P|2.5`,
      `SCH|A-${tag}|APT-${tag}^SCHED^2.16.840.1.113883.19.78^ISO|||||FOLLOWUP|NORMAL|30|min${'|'.repeat(16)}${order}^CPOE`,
      'TQ1|||||||202503201000+0000',
      pid(tag, 'WB'),
    ].join('\r');
    expect(await codes(siu)).toEqual(['AA']);
    const booked = await feed.one(
      `Appointment?identifier=${encodeURIComponent(`urn:oid:2.16.840.1.113883.19.78|APT-${tag}`)}`,
    );
    expect(booked['basedOn']).toEqual([{ reference: `ServiceRequest/${placed!['id']}` }]);
    // A third patient's result naming that order (a mislabelled tube) is filed under its own
    // patient, by the order's number only: never tied to the second patient's order.
    expect(await codes(glucose(tag, 'W5', 'WC', order, `L2-${tag}`))).toEqual(['AA']);
    const mislabelled = (await numbered('DiagnosticReport', LAB, `L2-${tag}`))[0]!;
    expect(mislabelled['subject']).toEqual({ reference: `Patient/${await patientOf(tag, 'WC')}` });
    expect(mislabelled['basedOn']).toEqual([
      {
        type: 'ServiceRequest',
        identifier: expect.objectContaining({ system: CPOE, value: order }),
      },
    ]);
  });
  it('refuses a cancel or discontinue of an order not known here (AE 204) rather than filing it', async () => {
    const tag = randomUUID().slice(0, 8);
    const rde = message('RDE^O11', 'CPOE');
    const acks = await feed.send(
      orm(tag, 'U1', 'U', `ORC|CA|U1-${tag}^CPOE`, 'OBR|1|||24725-4^CT Head^LN'),
      // A filler's cancel of its own number only, and one of no number at all.
      orm(tag, 'U2', 'U', `ORC|OC||LU2-${tag}^LAB||CA`, 'OBR|1|||2345-7^Glucose^LN'),
      orm(tag, 'U3', 'U', 'ORC|DC', 'OBR|1|||2345-7^Glucose^LN'),
      rde(tag, 'U4', 'U', `ORC|DC|U4-${tag}^CPOE`, 'RXE||197361^Amlodipine 5 mg tab^RXNORM|5||mg'),
      // Several orders in one message: a new one, and a cancel of one never placed.
      orm(
        tag,
        'U5',
        'U',
        `ORC|NW|U5-${tag}^CPOE`,
        'OBR|1|||2345-7^Glucose^LN',
        `ORC|CA|U6-${tag}^CPOE`,
        'OBR|2|||24725-4^CT Head^LN',
      ),
    );
    expect(acks.map((ack) => msaOf(ack).code)).toEqual(['AE', 'AE', 'AE', 'AE', 'AE']);
    for (const ack of acks) expect(ack).toContain('204^');
    expect(acks[0]).toContain('needs the number (ORC-2, ORC-3) of a known order');
    // Until 2026-12-07 each was filed: a new order, revoked or stopped, the sender not told
    // that the order it meant to cancel was never here. Nothing of them is (nor their patient).
    for (const [type, system, value] of [
      ['ServiceRequest', CPOE, `U1-${tag}`],
      ['ServiceRequest', LAB, `LU2-${tag}`],
      ['MedicationRequest', CPOE, `U4-${tag}`],
      ['ServiceRequest', CPOE, `U5-${tag}`],
      ['ServiceRequest', CPOE, `U6-${tag}`],
    ]) {
      expect(await numbered(type!, system!, value!)).toEqual([]);
    }
    expect(
      await feed.search(
        `Patient?identifier=${encodeURIComponent(`urn:oid:2.16.840.1.113883.19.77|U-${tag}`)}`,
      ),
    ).toEqual([]);
    // Once the order is placed, its cancel is taken, in a message with another order or alone.
    expect(
      await codes(
        orm(tag, 'U7', 'U', `ORC|NW|U6-${tag}^CPOE`, 'OBR|1|||24725-4^CT Head^LN'),
        orm(
          tag,
          'U8',
          'U',
          `ORC|NW|U5-${tag}^CPOE`,
          'OBR|1|||2345-7^Glucose^LN',
          `ORC|CA|U6-${tag}^CPOE`,
          'OBR|2|||24725-4^CT Head^LN',
        ),
      ),
    ).toEqual(['AA', 'AA']);
    expect((await numbered('ServiceRequest', CPOE, `U5-${tag}`))[0]!['status']).toBe('active');
    expect((await numbered('ServiceRequest', CPOE, `U6-${tag}`))[0]!['status']).toBe('revoked');
  });
  it('keeps how urgent an order is: TQ1-9, else ORC-7 or OBR-27 (v2.3), as the IG maps them', async () => {
    const tag = randomUUID().slice(0, 8);
    const rde = message('RDE^O11', 'CPOE');
    // A stat glucose (TQ1-9 S), an ASAP CT of an older feed (ORC-7.6 A, no TQ1), a routine one
    // (OBR-27.6 R alone), a pre-op one (P, which the IG maps to no priority), and a new one
    // after a cancelled stat one in the same message: each order has its own TQ1.
    expect(
      await codes(
        orm(
          tag,
          'S1',
          'S',
          `ORC|NW|S1-${tag}^CPOE`,
          'TQ1|1||||||202503010815+0000||S^Stat^HL70485',
          'OBR|1|||2345-7^Glucose^LN',
        ),
        orm(tag, 'S2', 'S', `ORC|NW|S2-${tag}^CPOE|||||^^^^^A`, 'OBR|1|||24725-4^CT Head^LN'),
        orm(
          tag,
          'S3',
          'S',
          `ORC|NW|S3-${tag}^CPOE`,
          `OBR|1|||24725-4^CT Head^LN${'|'.repeat(23)}^^^^^R`,
        ),
        orm(tag, 'S4', 'S', `ORC|NW|S4-${tag}^CPOE`, 'TQ1|1||||||||P', 'OBR|1|||2345-7^Glucose^LN'),
        orm(
          tag,
          'S5',
          'S',
          `ORC|NW|S5-${tag}^CPOE`,
          'TQ1|1||||||||S',
          'OBR|1|||2345-7^Glucose^LN',
          `ORC|NW|S6-${tag}^CPOE`,
          'OBR|2|||2345-7^Glucose^LN',
          'TQ1|1||||||||A',
        ),
        // A prescription: the TQ1 after its RXE (TIMING_ENCODED), else the one after its ORC.
        rde(
          tag,
          'S7',
          'S',
          `ORC|NW|S7-${tag}^CPOE`,
          'TQ1|1||||||||R',
          'RXE||197361^Amlodipine 5 mg tab^RXNORM|5||mg',
          'TQ1|1||||||||S',
          'RXR|PO^Oral^HL70162',
          `ORC|NW|S8-${tag}^CPOE`,
          'TQ1|1||||||||A',
          'RXE||197361^Amlodipine 5 mg tab^RXNORM|5||mg',
        ),
      ),
    ).toEqual(['AA', 'AA', 'AA', 'AA', 'AA', 'AA']);
    const priority = async (type: string, number: string) =>
      (await numbered(type, CPOE, `${number}-${tag}`))[0]!['priority'];
    expect(await priority('ServiceRequest', 'S1')).toBe('stat');
    expect(await priority('ServiceRequest', 'S2')).toBe('asap');
    expect(await priority('ServiceRequest', 'S3')).toBe('routine');
    expect(await priority('ServiceRequest', 'S4')).toBeUndefined();
    expect(await priority('ServiceRequest', 'S5')).toBe('stat');
    expect(await priority('ServiceRequest', 'S6')).toBe('asap');
    expect(await priority('MedicationRequest', 'S7')).toBe('stat');
    expect(await priority('MedicationRequest', 'S8')).toBe('asap');
    // A hold that carries no timing keeps the priority the order was placed with.
    expect(
      await codes(orm(tag, 'S9', 'S', `ORC|HD|S1-${tag}^CPOE`, 'OBR|1|||2345-7^Glucose^LN')),
    ).toEqual(['AA']);
    expect(await priority('ServiceRequest', 'S1')).toBe('stat');
  });
  it('keeps how often and from when to when a drug is given: TQ1-3, TQ1-7, TQ1-8, else RXE-1', async () => {
    const tag = randomUUID().slice(0, 8);
    const rde = message('RDE^O11', 'CPOE');
    expect(
      await codes(
        // The sample's give (RXE) and its own TQ1: P (table 0335), from 10:30 to 11:30.
        sample('RDE-O11-01.hl7', `T1-${tag}`, [
          ['1163422591^EPC', `T1-${tag}^EPC`],
          ['PATID1234^5^M11^test1&2.16.1&HCD', `T-${tag}^5^M11^test1&2.16.1&HCD`],
          ['123456789^^^USSSA^SS', ''],
        ]),
        rde(
          tag,
          'T2',
          'T',
          `ORC|NW|T2-${tag}^CPOE`,
          'RXE||197361^Amlodipine 5 mg tab^RXNORM|5||mg',
          'TQ1|1||Q6H||||20250301|20250308',
        ),
        // A v2.3 feed's quantity/timing in RXE-1: its interval's repeat pattern.
        rde(
          tag,
          'T3',
          'T',
          `ORC|NW|T3-${tag}^CPOE`,
          'RXE|^BID|197361^Amlodipine 5 mg tab^RXNORM|5||mg',
        ),
      ),
    ).toEqual(['AA', 'AA', 'AA']);
    const dosage = async (value: string) =>
      (
        await numbered(
          'MedicationRequest',
          value.startsWith('T1') ? 'urn:carevault:v2:assigning-authority:EPC' : CPOE,
          value,
        )
      )[0]!['dosageInstruction'][0];
    expect((await dosage(`T1-${tag}`))['timing']).toEqual({
      repeat: {
        boundsPeriod: { start: '2019-11-04T10:30:00+02:15', end: '2019-11-04T11:30:00+02:15' },
        // Every 180 minutes (TQ1-3.5, TQ1-3.6), dropped until 2026-12-07.
        period: 180,
        periodUnit: 'min',
      },
      code: {
        coding: [
          {
            system: 'http://terminology.hl7.org/CodeSystem/v2-0335',
            code: 'P',
            display: 'Post (after)',
          },
        ],
        text: 'Post (after)',
      },
    });
    expect((await dosage(`T2-${tag}`))['timing']).toEqual({
      repeat: { boundsPeriod: { start: '2025-03-01', end: '2025-03-08' } },
      code: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0335', code: 'Q6H' }] },
    });
    expect((await dosage(`T3-${tag}`))['timing']).toEqual({
      code: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0335', code: 'BID' }] },
    });
    // A discontinuation without a TQ1 keeps the timing the prescription had.
    expect(
      await codes(
        rde(tag, 'T4', 'T', `ORC|OD|T2-${tag}^CPOE`, 'RXE||197361^Amlodipine 5 mg tab^RXNORM'),
      ),
    ).toEqual(['AA']);
    const stopped = (await numbered('MedicationRequest', CPOE, `T2-${tag}`))[0]!;
    expect(stopped['status']).toBe('stopped');
    expect(stopped['dosageInstruction'][0]['timing']['code']['coding'][0]['code']).toBe('Q6H');
  });
  it("keeps how much of an order, how often and at what times: TQ1-2, TQ1-3's period, TQ1-4", async () => {
    const tag = randomUUID().slice(0, 8);
    expect(
      await codes(
        // The sample's lipid panel, once a day (TQ1-3: 1 d).
        sample('OML-O21-01.hl7', `H1-${tag}`, [
          ['1101^GHHPlacer', `H1-${tag}^GHHPlacer`],
          ['1201^GHHFiller', `H1-${tag}^GHHFiller`],
          ['PATID1234^5^M11^test1&2.16.1&HCD', `H-${tag}^5^M11^test1&2.16.1&HCD`],
          ['123456789^^^USSSA^SS', ''],
        ]),
        // Two units of blood, every 12 hours, at 08:00 and 20:00.
        orm(
          tag,
          'H2',
          'H',
          `ORC|NW|H2-${tag}^CPOE`,
          'TQ1|1|2^U&unit&UCUM|Q12H^^^^12^hr|0800~2000',
          'OBR|1|||14578-3^Blood product unit^LN',
        ),
      ),
    ).toEqual(['AA', 'AA']);
    const [panel] = await numbered(
      'ServiceRequest',
      'urn:carevault:v2:assigning-authority:GHHPlacer',
      `H1-${tag}`,
    );
    expect(panel!['occurrenceTiming']['repeat']).toEqual({ period: 1, periodUnit: 'd' });
    const [blood] = await numbered('ServiceRequest', CPOE, `H2-${tag}`);
    // All three dropped until 2026-12-07: two units read as one, at any time of day.
    expect(blood!['quantityQuantity']).toEqual({
      value: 2,
      unit: 'unit',
      system: 'http://unitsofmeasure.org',
      code: 'U',
    });
    expect(blood!['occurrenceTiming']['repeat']).toEqual({
      period: 12,
      periodUnit: 'h',
      timeOfDay: ['08:00:00', '20:00:00'],
    });
  });
  it("finds an order by its filler's number when the placer's is new to it, or not sent", async () => {
    const tag = randomUUID().slice(0, 8);
    // An order the lab placed (its number only), then the CPOE's number for it, a status
    // change and a cancel that carry both.
    expect(
      await codes(
        orm(tag, 'G1', 'G', `ORC|NW||G1-${tag}^LAB`, 'OBR|1|||2345-7^Glucose^LN'),
        orm(tag, 'G2', 'G', `ORC|SC|G1-${tag}^CPOE|G1-${tag}^LAB||IP`, 'OBR|1|||2345-7^Glucose^LN'),
        orm(tag, 'G3', 'G', `ORC|CA|G1-${tag}^CPOE|G1-${tag}^LAB`, 'OBR|1|||2345-7^Glucose^LN'),
      ),
    ).toEqual(['AA', 'AA', 'AA']);
    // The lab's result, by its number only (OBR-3), is for that order.
    expect(
      await codes(
        oru(
          tag,
          'G4',
          'G',
          `OBR|1||G1-${tag}^LAB|2345-7^Glucose^LN|||202503010900+0000||||||||||||||202503011000+0000|||F`,
          'OBX|1|NM|2345-7^Glucose^LN||5.4|mmol/L^mmol/L^UCUM|||||F',
        ),
      ),
    ).toEqual(['AA']);
    // Until 2026-12-07 the status change made a second order under the placer's number, and the
    // result, of no placer's number, named no order.
    const orders = await feed.search(`ServiceRequest?subject=Patient/${await patientOf(tag, 'G')}`);
    expect(orders).toHaveLength(1);
    expect(orders[0]!['status']).toBe('revoked');
    expect(
      orders[0]!['identifier'].map((id: { system: string; value: string }) => [
        id.system,
        id.value,
      ]),
    ).toEqual(
      expect.arrayContaining([
        [CPOE, `G1-${tag}`],
        [LAB, `G1-${tag}`],
      ]),
    );
    const [report] = await numbered('DiagnosticReport', LAB, `G1-${tag}`);
    expect(report!['basedOn']).toEqual([{ reference: `ServiceRequest/${orders[0]!['id']}` }]);
  });
  it('ties a result that came before its order to the order once it is placed', async () => {
    const tag = randomUUID().slice(0, 8);
    const order = `B1-${tag}`;
    expect(await codes(glucose(tag, 'B1', 'B', order, `LB1-${tag}`))).toEqual(['AA']);
    const [early] = await numbered('DiagnosticReport', LAB, `LB1-${tag}`);
    expect(early!['basedOn']).toEqual([
      { type: 'ServiceRequest', identifier: expect.objectContaining({ value: order }) },
    ]);
    // Another patient's order of that number leaves it as it is.
    expect(
      await codes(
        orm(tag, 'B2', 'BX', `ORC|NW|${order}^CPOE`, 'OBR|1|||2345-7^Glucose^LN'),
        orm(tag, 'B3', 'BX', `ORC|CA|${order}^CPOE`, 'OBR|1|||2345-7^Glucose^LN'),
      ),
    ).toEqual(['AA', 'AA']);
    expect((await numbered('DiagnosticReport', LAB, `LB1-${tag}`))[0]!['basedOn']).toEqual(
      early!['basedOn'],
    );
    expect(
      await codes(orm(tag, 'B4', 'B', `ORC|NW|${order}^CPOE`, 'OBR|1|||2345-7^Glucose^LN')),
    ).toEqual(['AA']);
    const [placed] = await feed.search(
      `ServiceRequest?subject=Patient/${await patientOf(tag, 'B')}`,
    );
    // Until 2026-12-07 they kept the number alone, and a search of the order's results
    // (DiagnosticReport?based-on=) found none.
    const answering = await feed.search(
      `DiagnosticReport?based-on=ServiceRequest/${placed!['id']}`,
    );
    expect(answering.map((report) => report['id'])).toEqual([early!['id']]);
    const results = await feed.search(`Observation?based-on=ServiceRequest/${placed!['id']}`);
    expect(results).toHaveLength(1);
  });
  it('refuses a change, hold, release or status change of an order not known here (AE 204)', async () => {
    const tag = randomUUID().slice(0, 8);
    const rde = message('RDE^O11', 'CPOE');
    const acks = await feed.send(
      orm(tag, 'X1', 'X', `ORC|XO|X1-${tag}^CPOE`, 'OBR|1|||24725-4^CT Head^LN'),
      orm(tag, 'X2', 'X', `ORC|HD|X2-${tag}^CPOE`, 'OBR|1|||2345-7^Glucose^LN'),
      orm(tag, 'X3', 'X', `ORC|SC||LX3-${tag}^LAB||IP`, 'OBR|1|||2345-7^Glucose^LN'),
      orm(tag, 'X4', 'X', `ORC|RL|X4-${tag}^CPOE`, 'OBR|1|||2345-7^Glucose^LN'),
      // A status change of no number at all (as OMG-O19-01 sends one): nothing to change.
      orm(tag, 'X5', 'X', 'ORC|SC||||CM', 'OBR|1|||2345-7^Glucose^LN'),
      rde(tag, 'X6', 'X', `ORC|XO|X6-${tag}^CPOE`, 'RXE||197361^Amlodipine 5 mg tab^RXNORM|5||mg'),
    );
    expect(acks.map((ack) => msaOf(ack).code)).toEqual(['AE', 'AE', 'AE', 'AE', 'AE', 'AE']);
    for (const ack of acks) expect(ack).toContain('204^');
    expect(acks[0]).toContain('ORC-1 XO');
    expect(acks[0]).toContain('needs the number (ORC-2, ORC-3) of a known order');
    // Until 2026-12-07 each was filed as a new order (a hold as a new order on hold, a change
    // as a new active one), and the sender never learnt the order it meant was not here.
    for (const [type, system, value] of [
      ['ServiceRequest', CPOE, `X1-${tag}`],
      ['ServiceRequest', CPOE, `X2-${tag}`],
      ['ServiceRequest', LAB, `LX3-${tag}`],
      ['ServiceRequest', CPOE, `X4-${tag}`],
      ['MedicationRequest', CPOE, `X6-${tag}`],
    ]) {
      expect(await numbered(type!, system!, value!)).toEqual([]);
    }
    expect(
      await feed.search(
        `Patient?identifier=${encodeURIComponent(`urn:oid:2.16.840.1.113883.19.77|X-${tag}`)}`,
      ),
    ).toEqual([]);
    // Placed first, the same change and hold are taken.
    expect(
      await codes(
        orm(tag, 'X7', 'X', `ORC|NW|X1-${tag}^CPOE`, 'OBR|1|||24725-4^CT Head^LN'),
        orm(tag, 'X8', 'X', `ORC|XO|X1-${tag}^CPOE`, 'OBR|1|||24726-2^CT Head W contrast^LN'),
        orm(tag, 'X9', 'X', `ORC|HD|X1-${tag}^CPOE`, 'OBR|1|||24726-2^CT Head W contrast^LN'),
      ),
    ).toEqual(['AA', 'AA', 'AA']);
    const [changed] = await numbered('ServiceRequest', CPOE, `X1-${tag}`);
    expect([changed!['status'], changed!['code'].coding[0].code]).toEqual(['on-hold', '24726-2']);
  });
  it('keeps when an order is to be done: TQ1-7 and TQ1-8, else ORC-7.4 and ORC-7.5 (v2.3)', async () => {
    const tag = randomUUID().slice(0, 8);
    expect(
      await codes(
        orm(
          tag,
          'Q1',
          'Q',
          `ORC|NW|Q1-${tag}^CPOE`,
          'TQ1|1||||||202503020800+0000|202503020900+0000|R',
          'OBR|1|||2345-7^Glucose^LN',
        ),
        orm(tag, 'Q2', 'Q', `ORC|NW|Q2-${tag}^CPOE|||||^^^20250305`, 'OBR|1|||24725-4^CT Head^LN'),
      ),
    ).toEqual(['AA', 'AA']);
    const order = async (number: string) => (await numbered('ServiceRequest', CPOE, number))[0]!;
    // Dropped until 2026-12-07: a fasting glucose for 08:00 tomorrow read as due now.
    expect((await order(`Q1-${tag}`))['occurrenceTiming']).toEqual({
      repeat: {
        boundsPeriod: { start: '2025-03-02T08:00:00+00:00', end: '2025-03-02T09:00:00+00:00' },
      },
    });
    expect((await order(`Q2-${tag}`))['occurrenceTiming']).toEqual({
      repeat: { boundsPeriod: { start: '2025-03-05' } },
    });
    // A hold that carries no timing keeps the one the order was placed with.
    expect(
      await codes(orm(tag, 'Q3', 'Q', `ORC|HD|Q1-${tag}^CPOE`, 'OBR|1|||2345-7^Glucose^LN')),
    ).toEqual(['AA']);
    expect((await order(`Q1-${tag}`))['occurrenceTiming']['repeat']['boundsPeriod']).toEqual({
      start: '2025-03-02T08:00:00+00:00',
      end: '2025-03-02T09:00:00+00:00',
    });
  });
  it('keeps how often an order is to be done: TQ1-3, else ORC-7.2 (v2.3), as the timing code', async () => {
    const tag = randomUUID().slice(0, 8);
    expect(
      await codes(
        orm(
          tag,
          'F1',
          'F',
          `ORC|NW|F1-${tag}^CPOE`,
          'TQ1|1||Q6H&Every 6 hours&HL70335||||202503020800+0000|202503021400+0000|R',
          'OBR|1|||2345-7^Glucose^LN',
        ),
        // A local pattern of no system, and no bounds: the code alone.
        orm(tag, 'F2', 'F', `ORC|NW|F2-${tag}^CPOE`, 'TQ1|1||QAM', 'OBR|1|||2345-7^Glucose^LN'),
        orm(tag, 'F3', 'F', `ORC|NW|F3-${tag}^CPOE|||||^Q4H`, 'OBR|1|||8310-5^Temperature^LN'),
      ),
    ).toEqual(['AA', 'AA', 'AA']);
    const timing = async (number: string) =>
      (await numbered('ServiceRequest', CPOE, number))[0]!['occurrenceTiming'];
    const pattern = (code: string) => ({
      coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0335', code }],
    });
    // Dropped until 2026-12-07: a glucose every 6 hours read as one glucose.
    expect(await timing(`F1-${tag}`)).toEqual({
      repeat: {
        boundsPeriod: { start: '2025-03-02T08:00:00+00:00', end: '2025-03-02T14:00:00+00:00' },
      },
      code: {
        coding: [
          {
            system: 'http://terminology.hl7.org/CodeSystem/v2-0335',
            code: 'Q6H',
            display: 'Every 6 hours',
          },
        ],
        text: 'Every 6 hours',
      },
    });
    expect(await timing(`F2-${tag}`)).toEqual({ code: pattern('QAM') });
    expect(await timing(`F3-${tag}`)).toEqual({ code: pattern('Q4H') });
  });
  it('files the order even when a result that came before it cannot be tied to it', async () => {
    const tag = randomUUID().slice(0, 8);
    const order = `E1-${tag}`;
    expect(
      await codes(
        glucose(tag, 'E1', 'E', order, `LE1-${tag}`),
        glucose(tag, 'E2', 'E', order, `LE2-${tag}`),
      ),
    ).toEqual(['AA', 'AA']);
    const [stuck] = await numbered('DiagnosticReport', LAB, `LE1-${tag}`);
    const [other] = await numbered('DiagnosticReport', LAB, `LE2-${tag}`);
    // A write of that one report fails (a record stored before a rule it now breaks).
    const data = feed.testApp.app.get(DataSource);
    const trigger = `test_untieable_${tag.replace(/-/g, '_')}`;
    await data.query(`CREATE FUNCTION ${trigger}() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN RAISE EXCEPTION 'injected failure'; END $$`);
    await data.query(`CREATE TRIGGER ${trigger} BEFORE UPDATE ON resource FOR EACH ROW
      WHEN (OLD.id = '${stuck!['id']}') EXECUTE FUNCTION ${trigger}()`);
    let acks: string[];
    try {
      acks = await feed.send(
        orm(tag, 'E3', 'E', `ORC|NW|${order}^CPOE`, 'OBR|1|||2345-7^Glucose^LN'),
      );
    } finally {
      await data.query(`DROP TRIGGER ${trigger} ON resource`);
      await data.query(`DROP FUNCTION ${trigger}()`);
    }
    // Until 2026-12-07 the ORM was an AE, and the order was not filed at all.
    expect(msaOf(acks[0]!).code).toBe('AA');
    expect(acks[0]).toContain('could not be tied to it');
    const [placed] = await numbered('ServiceRequest', CPOE, order);
    expect(placed!['status']).toBe('active');
    expect((await numbered('DiagnosticReport', LAB, `LE1-${tag}`))[0]!['basedOn']).toEqual(
      stuck!['basedOn'],
    );
    expect((await numbered('DiagnosticReport', LAB, `LE2-${tag}`))[0]!['basedOn']).toEqual([
      { reference: `ServiceRequest/${placed!['id']}` },
    ]);
    expect(other!['id']).not.toBe(stuck!['id']);
  });
  it('names the specimen of an order and of its results: SPM (v2.5 on), else OBR-15 (v2.3)', async () => {
    const tag = randomUUID().slice(0, 8);
    const oml = message('OML^O21', 'CPOE');
    const v23 = (type: string, control: string, ...segments: string[]) =>
      [
        `MSH|^~\\&|LAB|HOSP|CV|CV|202503010800||${type}|${control}-${tag}|P|2.3`,
        pid(tag, 'P'),
        ...segments,
      ].join('\r');
    const culture = (status: string) =>
      `OBR|1|P2-${tag}^CPOE|LP2-${tag}^LAB|600-7^Blood culture^LN|||202503010900+0000||||||||BLD&Blood&HL70070^^^LA&Left arm||||||||||${status}`;
    expect(
      await codes(
        oml(
          tag,
          'P1',
          'P',
          `ORC|NW|P1-${tag}^CPOE`,
          'OBR|1|||2345-7^Glucose^LN',
          `SPM|1|SP1-${tag}&CPOE||SER^Serum^HL70487|||||||P|||||||202503010830+0000`,
        ),
        v23('ORM^O01', 'P2', `ORC|NW|P2-${tag}^CPOE`, culture('')),
        v23(
          'ORU^R01',
          'P3',
          `ORC|RE|P2-${tag}^CPOE|LP2-${tag}^LAB`,
          culture('P'),
          'OBX|1|ST|600-7^Blood culture^LN||No growth at 24 hours||||||P',
        ),
        // The corrected final: the same specimen, not another.
        v23(
          'ORU^R01',
          'P4',
          `ORC|RE|P2-${tag}^CPOE|LP2-${tag}^LAB`,
          culture('F'),
          'OBX|1|ST|600-7^Blood culture^LN||No growth at 5 days||||||F',
        ),
      ),
    ).toEqual(['AA', 'AA', 'AA', 'AA']);
    const patient = await patientOf(tag, 'P');
    const [serum] = await feed.search(
      `Specimen?identifier=${encodeURIComponent(`${CPOE}|SP1-${tag}`)}`,
    );
    // Until 2026-12-07 neither order nor result named a specimen.
    expect((await numbered('ServiceRequest', CPOE, `P1-${tag}`))[0]!['specimen']).toEqual([
      { reference: `Specimen/${serum!['id']}` },
    ]);
    const specimens = (await feed.search(`Specimen?subject=Patient/${patient}`)).filter(
      (specimen) => !specimen['identifier'],
    );
    expect(specimens).toHaveLength(1);
    const [blood] = specimens;
    expect(blood).toMatchObject({
      type: {
        coding: [
          {
            system: 'http://terminology.hl7.org/CodeSystem/v2-0070',
            code: 'BLD',
            display: 'Blood',
          },
        ],
      },
      collection: {
        collectedDateTime: '2025-03-01T09:00:00+00:00',
        bodySite: { coding: [{ code: 'LA', display: 'Left arm' }] },
      },
    });
    const reference = [{ reference: `Specimen/${blood!['id']}` }];
    expect((await numbered('ServiceRequest', CPOE, `P2-${tag}`))[0]!['specimen']).toEqual(
      reference,
    );
    const [report] = await numbered('DiagnosticReport', LAB, `LP2-${tag}`);
    expect([report!['status'], report!['specimen']]).toEqual(['final', reference]);
    const [result] = await feed.search(`Observation?subject=Patient/${patient}`);
    expect(result!['specimen']).toEqual(reference[0]);
  });
  it("warns when a specimen id (SPM-2) is another patient's specimen too, and keeps each patient's apart", async () => {
    const tag = randomUUID().slice(0, 8);
    const oml = message('OML^O21', 'CPOE');
    const ordered = (control: string, mrn: string, order: string) =>
      oml(
        tag,
        control,
        mrn,
        `ORC|NW|${order}-${tag}^CPOE`,
        'OBR|1|||2345-7^Glucose^LN',
        `SPM|1|SX-${tag}&CPOE||SER^Serum^HL70487`,
      );
    const [placed, other, again] = await feed.send(
      ordered('X1', 'XA', 'X1'),
      // Another patient's order on the tube of the first (a mislabel, a reused number), as the
      // samples OML-O21-01 and ORU-R01-01 send one specimen id for two patients.
      ordered('X2', 'XB', 'X2'),
      // The first patient's second order on that tube: their own specimen, named again.
      ordered('X3', 'XA', 'X3'),
    );
    expect([placed, other, again].map((ack) => msaOf(ack!).code)).toEqual(['AA', 'AA', 'AA']);
    // Until 2026-12-07 the second patient's Specimen of that id was filed in silence.
    const warning = "SPM-2 names another patient's specimen too";
    // The first patient's next order on it is warned of too, until the sender sorts it out.
    expect([placed, other, again].map((ack) => ack!.includes(warning))).toEqual([
      false,
      true,
      true,
    ]);
    const specimenOf = async (order: string) => {
      const [request] = await numbered('ServiceRequest', CPOE, `${order}-${tag}`);
      const [reference] = request!['specimen'] as { reference: string }[];
      return feed.one(`Specimen?_id=${reference!.reference.split('/')[1]}`);
    };
    const [first, second, third] = [
      await specimenOf('X1'),
      await specimenOf('X2'),
      await specimenOf('X3'),
    ];
    expect(third['id']).toBe(first['id']);
    expect(second['id']).not.toBe(first['id']);
    expect([first['subject'], second['subject']]).toEqual([
      { reference: `Patient/${await patientOf(tag, 'XA')}` },
      { reference: `Patient/${await patientOf(tag, 'XB')}` },
    ]);
  });
  it("files an ORM's pharmacy order (RXO, no OBR) as a MedicationRequest, as the IG maps it", async () => {
    const tag = randomUUID().slice(0, 8);
    const rxo =
      'RXO|00047040230^Ampicillin 250 mg caps^NDC|2||caps^capsule|||||||20|caps^capsule|3';
    expect(
      await codes(
        orm(tag, 'M1', 'M', `ORC|NW|M1-${tag}^CPOE|||||^BID`, rxo, 'RXR|PO^Oral^HL70162'),
        orm(tag, 'M2', 'M', `ORC|DC|M1-${tag}^CPOE`, rxo),
      ),
    ).toEqual(['AA', 'AA']);
    // Until 2026-12-07 it was a ServiceRequest of no code: an order that named no drug.
    expect(await numbered('ServiceRequest', CPOE, `M1-${tag}`)).toEqual([]);
    const [prescription] = await numbered('MedicationRequest', CPOE, `M1-${tag}`);
    expect(prescription).toMatchObject({
      status: 'stopped',
      intent: 'order',
      medicationCodeableConcept: {
        coding: [expect.objectContaining({ code: '00047040230' })],
      },
      dosageInstruction: [
        {
          timing: { code: { coding: [expect.objectContaining({ code: 'BID' })] } },
          doseAndRate: [{ doseQuantity: { value: 2, unit: 'capsule' } }],
          route: { coding: [expect.objectContaining({ code: 'PO' })] },
        },
      ],
      dispenseRequest: { quantity: { value: 20, unit: 'capsule' }, numberOfRepeatsAllowed: 3 },
    });
  });
  it("files an order's ask-at-order-entry answers (its OBX) as Observations in supportingInfo", async () => {
    const tag = randomUUID().slice(0, 8);
    const sampled = (control: string) =>
      // Every order number made this test's own: hl7-mllp files the sample as it is, for its
      // patient, and an order number of another patient's order is refused (AE).
      sample('MDHHS-OML-O21-1.hl7', `${control}-${tag}`, [
        ['ORD723222', `A1-${tag}`],
        ['R-783274', `R1-${tag}`],
        ['R783274', `R1-${tag}`],
        ['GORD874211', `G1-${tag}`],
        ['MRNTC09SA-Part A', `A-${tag}`],
      ]);
    const oml = message('OML^O21', 'CPOE');
    const answered = (control: string, pregnant: string) =>
      oml(
        tag,
        control,
        'A',
        `ORC|NW|A2-${tag}^CPOE`,
        'OBR|1|||2345-7^Glucose^LN',
        'NTE|1||Fasting',
        `OBX|1|CWE|AOE1^Pregnant^L||${pregnant}^${pregnant === 'Y' ? 'Yes' : 'No'}^HL70136||||||O`,
        'NTE|1||Asked at the ward',
        'OBX|2|NM|AOE2^Hours fasting^L||12|h||||||O',
        // Two answers of one question stay two (the OMG samples send such).
        'OBX|3|ST|AOE3^Symptom^L||Thirst||||||O',
        'OBX|4|ST|AOE3^Symptom^L||Polyuria||||||O',
        // The specimen's own observation is not an answer of the order.
        `SPM|1|SA-${tag}&CPOE||SER^Serum^HL70487`,
        'OBX|1|NM|SPM1^Specimen volume^L||5|mL||||||F',
      );
    expect(await codes(sampled('A1'), answered('A2', 'N'))).toEqual(['AA', 'AA']);
    const supporting = async (system: string, value: string) => {
      const [order] = await numbered('ServiceRequest', system, value);
      return Promise.all(
        ((order!['supportingInfo'] ?? []) as { reference: string }[]).map(({ reference }) =>
          feed.one(`Observation?_id=${reference.split('/')[1]}`),
        ),
      );
    };
    // The sample's date of the last rabies vaccination (AOE15), dropped until 2026-12-07.
    const [rabies, ...none] = await supporting('urn:oid:2.16.840.1.113883.3.72.5.24', `A1-${tag}`);
    expect(none).toEqual([]);
    expect(rabies).toMatchObject({
      code: { coding: [expect.objectContaining({ code: 'AOE15' })] },
      valueDateTime: '2015-08-18T06:06:05-05:00',
    });
    const answers = await supporting(CPOE, `A2-${tag}`);
    expect(
      answers.map((answer) => [
        answer['code'].coding[0].code,
        answer['valueCodeableConcept']?.coding[0].code ??
          answer['valueQuantity']?.value ??
          answer['valueString'],
      ]),
    ).toEqual([
      ['AOE1', 'N'],
      ['AOE2', 12],
      ['AOE3', 'Thirst'],
      ['AOE3', 'Polyuria'],
    ]);
    expect(answers[0]!['note']).toEqual([{ text: 'Asked at the ward' }]);
    const [order] = await numbered('ServiceRequest', CPOE, `A2-${tag}`);
    expect(order!['note']).toEqual([{ text: 'Fasting' }]);
    // Sent again (a new control id), with an answer changed: the same records, one updated.
    expect(await codes(sampled('A3'), answered('A4', 'Y'))).toEqual(['AA', 'AA']);
    const again = await supporting(CPOE, `A2-${tag}`);
    expect(again.map((answer) => answer['id'])).toEqual(answers.map((answer) => answer['id']));
    expect(again[0]!['valueCodeableConcept'].coding[0].code).toBe('Y');
    const patient = order!['subject'].reference as string;
    expect(await feed.search(`Observation?subject=${patient}&code=AOE3`)).toHaveLength(2);
    const [rabiesAgain] = await supporting('urn:oid:2.16.840.1.113883.3.72.5.24', `A1-${tag}`);
    expect(rabiesAgain!['id']).toBe(rabies!['id']);
  });
  it('files a pharmacy order of no number once, however often it is sent again', async () => {
    const tag = randomUUID().slice(0, 8);
    const rxo = (code: string) =>
      `RXO|${code}^Drug ${code}^NDC|2||caps^capsule|||||||20|caps^capsule|3`;
    const unnumbered = (control: string, code: string, placed = '') =>
      orm(tag, control, 'N', `ORC|NW||||||||${placed}`, rxo(code), 'RXR|PO^Oral^HL70162');
    const first = [
      unnumbered('N1', '00047040230', '202503010800+0000'),
      unnumbered('N2', '00093314705'),
    ];
    expect(await codes(...first)).toEqual(['AA', 'AA']);
    // The same orders again under new control ids (an interface engine's replay), then another
    // drug and the first drug written at another time: those two are new orders.
    expect(
      await codes(
        unnumbered('N3', '00047040230', '202503010800+0000'),
        unnumbered('N4', '00093314705'),
        unnumbered('N5', '00378018110'),
        unnumbered('N6', '00047040230', '202503020800+0000'),
      ),
    ).toEqual(['AA', 'AA', 'AA', 'AA']);
    const patient = await patientOf(tag, 'N');
    const filed = await feed.search(`MedicationRequest?subject=Patient/${patient}`);
    // Until 2026-12-07 each resend filed the prescription again: six, a drug listed twice.
    expect(
      filed
        .map(
          (request) =>
            `${request['medicationCodeableConcept'].coding[0].code}@${request['authoredOn'] ?? ''}`,
        )
        .sort(),
    ).toEqual([
      '00047040230@2025-03-01T08:00:00+00:00',
      '00047040230@2025-03-02T08:00:00+00:00',
      '00093314705@',
      '00378018110@',
    ]);
  });
  it("leaves an order's answers as a newer message set them when an older one is replayed", async () => {
    const tag = randomUUID().slice(0, 8);
    const oml = message('OML^O21', 'CPOE');
    /** The order and its answer, sent at `time` (MSH-7 of a UTC offset, which orders). */
    const answered = (control: string, time: string, pregnant: string, ...more: string[]) =>
      oml(
        tag,
        control,
        'K',
        `ORC|NW|K1-${tag}^CPOE`,
        'OBR|1|||2345-7^Glucose^LN',
        `OBX|1|CWE|AOE1^Pregnant^L||${pregnant}^${pregnant}^HL70136||||||O`,
        ...more,
      ).replace('|202503010800||', `|${time}||`);
    // 12:00's answer, then 11:00's replayed after it, with an answer 12:00 did not have.
    expect(
      await codes(
        answered('K2', '202503011200+0000', 'Y'),
        answered('K1', '202503011100+0000', 'N', 'OBX|2|NM|AOE2^Hours fasting^L||12|h||||||O'),
      ),
    ).toEqual(['AA', 'AA']);
    const [order] = await numbered('ServiceRequest', CPOE, `K1-${tag}`);
    const answers = await Promise.all(
      (order!['supportingInfo'] as { reference: string }[]).map(({ reference }) =>
        feed.one(`Observation?_id=${reference.split('/')[1]}`),
      ),
    );
    // Until 2026-12-07 the replayed 11:00 wrote its N over 12:00's Y.
    expect(answers.map((answer) => answer['valueCodeableConcept'].coding[0].code)).toEqual(['Y']);
    // Nor is an answer of the older message filed apart from the order it was kept from.
    const patient = order!['subject'].reference as string;
    expect(await feed.search(`Observation?subject=${patient}&code=AOE2`)).toEqual([]);
  });
  it("files the OBX of an ORM's pharmacy order (RXO) as Observations in supportingInformation", async () => {
    const tag = randomUUID().slice(0, 8);
    const sampled = (control: string) =>
      sample('ORM-O01-06.hl7', `${control}-${tag}`, [
        ['1163422591^EPC', `P1-${tag}^EPC`],
        ['PATID1234^5^M11^test1&2.16.1&HCD', `P-${tag}^5^M11^test1&2.16.1&HCD`],
        ['123456789^^^USSSA^SS', ''],
      ]);
    expect(await codes(sampled('P1'))).toEqual(['AA']);
    const EPC = 'urn:carevault:v2:assigning-authority:EPC';
    const supporting = async () => {
      const [prescription] = await numbered('MedicationRequest', EPC, `P1-${tag}`);
      return Promise.all(
        ((prescription!['supportingInformation'] ?? []) as { reference: string }[]).map(
          ({ reference }) => feed.one(`Observation?_id=${reference.split('/')[1]}`),
        ),
      );
    };
    // The sample's heart rate (8867-4) and its note, dropped until 2026-12-07.
    const [heartRate, ...none] = await supporting();
    expect(none).toEqual([]);
    expect(heartRate).toMatchObject({
      code: { coding: [expect.objectContaining({ code: '8867-4' })] },
      note: [{ text: 'No Antibodies Detected' }],
    });
    // Sent again under a new control id: the same Observation, not a second one.
    expect(await codes(sampled('P2'))).toEqual(['AA']);
    expect((await supporting()).map((answer) => answer['id'])).toEqual([heartRate!['id']]);
  });
  it('files an order of no number once when it is sent again, and distinct ones apart', async () => {
    const tag = randomUUID().slice(0, 8);
    // The samples' orders with their numbers taken out (a CPOE that numbers none) and a
    // patient of this test's own.
    const unnumbered = (file: string, control: string) =>
      sample(file, `${control}-${tag}`, [
        ['1101^GHHPlacer', ''],
        ['1201^GHHFiller', ''],
        ['2203^GHHPlacer', ''],
        ['2301^GHHFiller', ''],
        ['PATID1234^5^M11^test1&2.16.1&HCD', `U-${tag}^5^M11^test1&2.16.1&HCD`],
        ['123456789^^^USSSA^SS', ''],
      ]);
    // ORM-O01-03: a CT head and an MR brain; then the same message under a new control id
    // (an engine's replay), which until 2026-12-07 filed both again.
    expect(
      await codes(unnumbered('ORM-O01-03.hl7', 'U1'), unnumbered('ORM-O01-03.hl7', 'U2')),
    ).toEqual(['AA', 'AA']);
    const patient = (await feed.one(`Patient?identifier=U-${tag}`))['id'] as string;
    const orders = async () =>
      (await feed.search(`ServiceRequest?subject=Patient/${patient}`))
        .map((order) => order['code'].coding[0].code as string)
        .sort();
    expect(await orders()).toEqual(['24590-2', '24725-4']);
    // ORM-O01-01: a CT head again, but twice a day from 2002 to 2003 with an answer (OBX):
    // another order, filed once however often it is sent, its answer with it.
    expect(
      await codes(unnumbered('ORM-O01-01.hl7', 'U3'), unnumbered('ORM-O01-01.hl7', 'U4')),
    ).toEqual(['AA', 'AA']);
    expect(await orders()).toEqual(['24590-2', '24725-4', '24725-4']);
    expect(await feed.search(`Observation?subject=Patient/${patient}&code=8867-4`)).toHaveLength(1);
    // Two same orders in one message (two glucoses to be drawn) stay two, and two again when
    // the message is sent again.
    const twice = (control: string) =>
      orm(
        tag,
        control,
        'V',
        'ORC|NW',
        'OBR|1|||2345-7^Glucose^LN',
        'ORC|NW',
        'OBR|2|||2345-7^Glucose^LN',
      );
    expect(await codes(twice('V1'), twice('V2'))).toEqual(['AA', 'AA']);
    const glucoses = await feed.search(
      `ServiceRequest?subject=Patient/${await patientOf(tag, 'V')}`,
    );
    expect(glucoses).toHaveLength(2);
  });
  it('answers a repeated order message as before and files it once; new content under its id is new', async () => {
    const tag = randomUUID().slice(0, 8);
    const placed = orm(tag, 'R1', 'R', `ORC|NW|R1-${tag}^CPOE`, 'OBR|1|||2345-7^Glucose^LN');
    const cancel = orm(tag, 'R2', 'R', `ORC|CA|R1-${tag}^CPOE`, 'OBR|1|||2345-7^Glucose^LN');
    const [first, second] = await feed.send(placed, placed);
    expect(msaOf(first!)).toEqual(msaOf(second!));
    const [order] = await numbered('ServiceRequest', CPOE, `R1-${tag}`);
    expect(order!['meta'].versionId).toBe('1');
    // The cancel, and the cancel again: one change, the order revoked once.
    expect(await codes(cancel, cancel)).toEqual(['AA', 'AA']);
    const [revoked] = await numbered('ServiceRequest', CPOE, `R1-${tag}`);
    expect([revoked!['status'], revoked!['meta'].versionId]).toEqual(['revoked', '2']);
    // The samples reuse control ids (MSG00001): another message under one is processed.
    expect(
      await codes(orm(tag, 'R1', 'R', `ORC|NW|R3-${tag}^CPOE`, 'OBR|1|||2345-7^Glucose^LN')),
    ).toEqual(['AA']);
    expect(await numbered('ServiceRequest', CPOE, `R3-${tag}`)).toHaveLength(1);
  });
  it("files the OBX of an RDE's encoded order (RXE) as Observations in supportingInformation", async () => {
    const tag = randomUUID().slice(0, 8);
    const rde = message('RDE^O11', 'CPOE');
    /** Vancomycin dosed by weight and kidney function, as a pharmacy system sends it. */
    const dosed = (control: string, weight: string, ...more: string[]) =>
      rde(
        tag,
        control,
        'E',
        `ORC|NW|E1-${tag}^CPOE|||||||202503010800+0000`,
        'RXE|^Q12H^^^^R|11124^Vancomycin 1000 MG Injection^RXNORM|1000||mg^milligram^UCUM',
        'TQ1|1||Q12H^Every 12 hours^HL70335',
        'RXR|IV^Intravenous^HL70162',
        `OBX|1|NM|29463-7^Body weight^LN||${weight}|kg^kilogram^UCUM|||||F`,
        'NTE|1||Weighed on admission',
        'OBX|2|NM|2160-0^Creatinine^LN||1.1|mg/dL^^UCUM|||||F',
        ...more,
      );
    // A second order of the message has its own observation, not the first's.
    const second = [
      `ORC|NW|E2-${tag}^CPOE`,
      'RXE||197361^Amlodipine 5 MG Oral Tablet^RXNORM|5||mg^milligram^UCUM',
      'OBX|1|NM|8480-6^Systolic blood pressure^LN||150|mm[Hg]^^UCUM|||||F',
    ];
    expect(await codes(dosed('E1', '72.5', ...second))).toEqual(['AA']);
    const supporting = async (value: string) => {
      const [prescription] = await numbered('MedicationRequest', CPOE, value);
      return Promise.all(
        ((prescription!['supportingInformation'] ?? []) as { reference: string }[]).map(
          ({ reference }) => feed.one(`Observation?_id=${reference.split('/')[1]}`),
        ),
      );
    };
    // Dropped until 2026-12-07: the weight the dose was worked out from was nowhere.
    const [weight, creatinine, ...none] = await supporting(`E1-${tag}`);
    expect(none).toEqual([]);
    expect(weight).toMatchObject({
      code: { coding: [expect.objectContaining({ code: '29463-7' })] },
      valueQuantity: { value: 72.5, unit: 'kilogram' },
      note: [{ text: 'Weighed on admission' }],
    });
    expect(creatinine!['code'].coding[0].code).toBe('2160-0');
    expect((await supporting(`E2-${tag}`)).map((obx) => obx['code'].coding[0].code)).toEqual([
      '8480-6',
    ]);
    // Sent again under a new control id, the weight corrected: the same Observations.
    expect(await codes(dosed('E2', '74', ...second))).toEqual(['AA']);
    const again = await supporting(`E1-${tag}`);
    expect(again.map((obx) => obx['id'])).toEqual([weight!['id'], creatinine!['id']]);
    expect(again[0]!['valueQuantity'].value).toBe(74);
    const patient = await patientOf(tag, 'E');
    expect(await feed.search(`Observation?subject=Patient/${patient}&code=29463-7`)).toHaveLength(
      1,
    );
    // The shared sample's heart rate (an OBX after its RXE, RXR, RXC and CDO) too.
    const sampled = sample('RDE-O11-01.hl7', `ES-${tag}`, [
      ['1163422591^EPC', `ES-${tag}^EPC`],
      ['PATID1234^5^M11^test1&2.16.1&HCD', `ES-${tag}^5^M11^test1&2.16.1&HCD`],
      ['123456789^^^USSSA^SS', ''],
    ]);
    expect(await codes(sampled)).toEqual(['AA']);
    const [prescription] = await numbered(
      'MedicationRequest',
      'urn:carevault:v2:assigning-authority:EPC',
      `ES-${tag}`,
    );
    const references = prescription!['supportingInformation'] as { reference: string }[];
    expect(references).toHaveLength(1);
    const heartRate = await feed.one(`Observation?_id=${references[0]!.reference.split('/')[1]}`);
    expect(heartRate['code'].coding[0].code).toBe('8867-4');
  });
  it('files an OMP^O09 pharmacy order as a MedicationRequest, its OBX in supportingInformation', async () => {
    const tag = randomUUID().slice(0, 8);
    const omp = (control: string, orc: string, weight = '72.5') =>
      [
        `MSH|^~\\&|CPOE|HOSP|PHARM|HOSP|202503010800+0000||OMP^O09^OMP_O09|${control}-${tag}|P|2.5.1`,
        pid(tag, 'P'),
        'PV1|1|I|4E^401^A',
        orc,
        'TQ1|1||Q12H^Every 12 hours^HL70335||||202503011000+0000|202503081000+0000|R',
        'RXO|11124^Vancomycin 1000 MG Injection^RXNORM|1000||mg^milligram^UCUM|||||||14|VIAL^vial|0',
        'NTE|1||Trough before the fourth dose',
        'RXR|IV^Intravenous^HL70162',
        `OBX|1|NM|29463-7^Body weight^LN||${weight}|kg^kilogram^UCUM|||||F`,
        'OBX|2|NM|2160-0^Creatinine^LN||1.1|mg/dL^^UCUM|||||F',
      ].join('\r');
    const placed = `ORC|NW|P1-${tag}^CPOE|PF1-${tag}^PHARM||||||202503010800+0000|||1234^Welby^Marcus^^^Dr^^^CPOE`;
    const [ack] = await feed.send(omp('P1', placed));
    // Until 2026-12-07 an AR (200, unsupported message type): the order was not filed.
    expect(msaOf(ack!).code).toBe('AA');
    // A generic ACK, as for ORM, OML and RDE (the service sends no message-specific ones).
    expect(ack!.split('\r')[0]!.split('|')[8]).toBe('ACK^O09^ACK');
    const [prescription, ...others] = await numbered('MedicationRequest', CPOE, `P1-${tag}`);
    expect(others).toEqual([]);
    expect(prescription).toMatchObject({
      status: 'active',
      intent: 'order',
      priority: 'routine',
      medicationCodeableConcept: { coding: [expect.objectContaining({ code: '11124' })] },
      authoredOn: '2025-03-01T08:00:00+00:00',
      requester: expect.objectContaining({ type: 'Practitioner' }),
      dosageInstruction: [
        {
          timing: {
            repeat: {
              boundsPeriod: {
                start: '2025-03-01T10:00:00+00:00',
                end: '2025-03-08T10:00:00+00:00',
              },
            },
            code: { coding: [expect.objectContaining({ code: 'Q12H' })] },
          },
          doseAndRate: [{ doseQuantity: { value: 1000, unit: 'milligram' } }],
          route: { coding: [expect.objectContaining({ code: 'IV' })] },
        },
      ],
      dispenseRequest: { quantity: { value: 14, unit: 'vial' }, numberOfRepeatsAllowed: 0 },
      // The NTE after the RXO: the prescriber's note (until 2026-12-07 it was dropped).
      note: [{ text: 'Trough before the fourth dose' }],
    });
    expect(prescription!['identifier']).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ system: CPOE, value: `P1-${tag}` }),
        expect.objectContaining({ value: `PF1-${tag}` }),
      ]),
    );
    const supporting = async () => {
      const [order] = await numbered('MedicationRequest', CPOE, `P1-${tag}`);
      return Promise.all(
        ((order!['supportingInformation'] ?? []) as { reference: string }[]).map(({ reference }) =>
          feed.one(`Observation?_id=${reference.split('/')[1]}`),
        ),
      );
    };
    const observations = await supporting();
    expect(observations.map((obx) => obx['code'].coding[0].code)).toEqual(['29463-7', '2160-0']);
    // Sent again (a new control id): the same order and Observations, none added.
    expect(await codes(omp('P2', placed, '74'))).toEqual(['AA']);
    expect((await supporting()).map((obx) => obx['id'])).toEqual(
      observations.map((obx) => obx['id']),
    );
    const patient = await patientOf(tag, 'P');
    expect(await feed.search(`Observation?subject=Patient/${patient}&code=29463-7`)).toHaveLength(
      1,
    );
    // The order cancelled under the same numbers: the same MedicationRequest, now cancelled.
    expect(
      await codes(omp('P3', `ORC|CA|P1-${tag}^CPOE|PF1-${tag}^PHARM||||||202503011200+0000`)),
    ).toEqual(['AA']);
    const [cancelled, ...more] = await numbered('MedicationRequest', CPOE, `P1-${tag}`);
    expect(more).toEqual([]);
    expect([cancelled!['id'], cancelled!['status']]).toEqual([prescription!['id'], 'cancelled']);
    // An OMP order of no RXO says no drug: refused (AE 100), not filed as an order of no code.
    const [bare] = await feed.send(
      omp('P4', `ORC|NW|P4-${tag}^CPOE`).split('\r').slice(0, 4).join('\r'),
    );
    expect(msaOf(bare!).code).toBe('AE');
    expect(bare).toContain('100^');
    expect(await numbered('ServiceRequest', CPOE, `P4-${tag}`)).toEqual([]);
    expect(await numbered('MedicationRequest', CPOE, `P4-${tag}`)).toEqual([]);
  });

  it("files the OBX after an RDS's dispense (RXD) as Observations in its supportingInformation", async () => {
    const tag = randomUUID().slice(0, 8);
    const rds = message('RDS^O13', 'PHARM');
    /** A pharmacy's dispense of warfarin, with the INR it was checked against. */
    const dispensed = (control: string, inr: string) =>
      rds(
        tag,
        control,
        'D',
        `ORC|RE|D1-${tag}^CPOE|||||||202503010800+0000`,
        'RXE||855332^Warfarin Sodium 5 MG Oral Tablet^RXNORM|5||mg^milligram^UCUM',
        'RXD|1|855332^Warfarin Sodium 5 MG Oral Tablet^RXNORM|202503011000+0000|30|TAB^Tablet',
        'RXR|PO^Oral^HL70162',
        `OBX|1|NM|6301-6^INR^LN||${inr}||2.0-3.0|||||F`,
        'NTE|1||Drawn the morning of the dispense',
      );
    expect(await codes(dispensed('D1', '2.4'))).toEqual(['AA']);
    const [prescription] = await numbered('MedicationRequest', CPOE, `D1-${tag}`);
    // The INR is the dispense's (its OBX come after its RXD), not the prescription's.
    expect(prescription!['supportingInformation']).toBeUndefined();
    const supporting = async () => {
      const [dispense, ...others] = await numbered(
        'MedicationDispense',
        CPOE,
        `D1-${tag}/dispense/1`,
      );
      expect(others).toEqual([]);
      return Promise.all(
        ((dispense!['supportingInformation'] ?? []) as { reference: string }[]).map(
          ({ reference }) => feed.one(`Observation?_id=${reference.split('/')[1]}`),
        ),
      );
    };
    // Dropped until 2026-12-07: the INR the pharmacist checked was nowhere.
    const [inr, ...none] = await supporting();
    expect(none).toEqual([]);
    expect(inr).toMatchObject({
      code: { coding: [expect.objectContaining({ code: '6301-6' })] },
      valueQuantity: { value: 2.4 },
      note: [{ text: 'Drawn the morning of the dispense' }],
    });
    // Sent again (a new control id), the INR corrected: the same Observation, none added.
    expect(await codes(dispensed('D2', '2.6'))).toEqual(['AA']);
    const again = await supporting();
    expect(again.map((obx) => obx['id'])).toEqual([inr!['id']]);
    expect(again[0]!['valueQuantity'].value).toBe(2.6);
    const patient = await patientOf(tag, 'D');
    expect(await feed.search(`Observation?subject=Patient/${patient}&code=6301-6`)).toHaveLength(1);
    // The shared sample's heart rate (after its RXD, RXR, RXC and CDO) is its dispense's.
    const sampled = sample('RDS-O13-01.hl7', `DS-${tag}`, [
      ['1163422591^EPC', `DS-${tag}^EPC`],
      ['PATID1234^5^M11^test1&2.16.1&HCD', `DS-${tag}^5^M11^test1&2.16.1&HCD`],
      ['123456789^^^USSSA^SS', ''],
    ]);
    expect(await codes(sampled)).toEqual(['AA']);
    const EPC = 'urn:carevault:v2:assigning-authority:EPC';
    const [order] = await numbered('MedicationRequest', EPC, `DS-${tag}`);
    expect(order!['supportingInformation']).toBeUndefined();
    const [dispense] = await numbered('MedicationDispense', EPC, `DS-${tag}/dispense/1`);
    const references = dispense!['supportingInformation'] as { reference: string }[];
    expect(references).toHaveLength(1);
    const heartRate = await feed.one(`Observation?_id=${references[0]!.reference.split('/')[1]}`);
    expect(heartRate['code'].coding[0].code).toBe('8867-4');
  });

  it("keeps the NTE after an RDE's encoded order (RXE) as its MedicationRequest's note", async () => {
    const tag = randomUUID().slice(0, 8);
    const rde = message('RDE^O11', 'CPOE');
    const sent = (control: string, ...notes: string[]) =>
      rde(
        tag,
        control,
        'N',
        `ORC|NW|N1-${tag}^CPOE|||||||202503010800+0000`,
        'RXE||197361^Amlodipine 5 MG Oral Tablet^RXNORM|5||mg^milligram^UCUM',
        ...notes,
        'RXR|PO^Oral^HL70162',
        'OBX|1|NM|8480-6^Systolic blood pressure^LN||150|mm[Hg]^^UCUM|||||F',
        'NTE|1||Seated, left arm',
      );
    expect(
      await codes(sent('N1', 'NTE|1||Hold if systolic below 100', 'NTE|2||Review in 2 weeks')),
    ).toEqual(['AA']);
    const [prescription] = await numbered('MedicationRequest', CPOE, `N1-${tag}`);
    // Dropped until 2026-12-07; the OBX's own NTE stays the Observation's.
    expect(prescription!['note']).toEqual([
      { text: 'Hold if systolic below 100' },
      { text: 'Review in 2 weeks' },
    ]);
    // Sent again with one note: that note, not three.
    expect(await codes(sent('N2', 'NTE|1||Hold if systolic below 90'))).toEqual(['AA']);
    const [again, ...others] = await numbered('MedicationRequest', CPOE, `N1-${tag}`);
    expect(others).toEqual([]);
    expect(again!['note']).toEqual([{ text: 'Hold if systolic below 90' }]);
  });

  it("keeps a compound's components (RXC) as the ingredients of its contained Medication", async () => {
    const tag = randomUUID().slice(0, 8);
    const rde = message('RDE^O11', 'CPOE');
    const vancomycin = '11124^Vancomycin 1000 MG Injection^RXNORM';
    /** An IV admixture: vancomycin added to a 250 mL bag of saline. */
    const admixture = (control: string, orc: string, dose = '1000', ...more: string[]) =>
      rde(
        tag,
        control,
        'C',
        orc,
        `RXE|^Q12H^^^^R|${vancomycin}|${dose}||mg^milligram^UCUM`,
        'RXR|IV^Intravenous^HL70162',
        'RXC|B|313002^Sodium Chloride 9 MG/ML Injectable Solution^RXNORM|250|mL^milliliter^UCUM',
        `RXC|A|${vancomycin}|${dose}|mg^milligram^UCUM`,
        ...more,
      );
    const placed = `ORC|NW|C1-${tag}^CPOE|||||||202503010800+0000`;
    expect(await codes(admixture('C1', placed))).toEqual(['AA']);
    const [prescription] = await numbered('MedicationRequest', CPOE, `C1-${tag}`);
    // Dropped until 2026-12-07: the order named the drug, never the bag it was mixed into.
    const reference = (prescription!['medicationReference'] as { reference: string }).reference;
    expect(prescription!['medicationCodeableConcept']).toBeUndefined();
    const contained = prescription!['contained'] as Record<string, any>[];
    expect(contained).toHaveLength(1);
    expect(`#${String(contained[0]!['id'])}`).toBe(reference);
    expect(contained[0]).toMatchObject({
      resourceType: 'Medication',
      code: { coding: [expect.objectContaining({ code: '11124' })] },
      ingredient: [
        {
          itemCodeableConcept: { coding: [expect.objectContaining({ code: '313002' })] },
          strength: {
            numerator: { value: 250, unit: 'milliliter', code: 'mL' },
            denominator: { value: 1 },
          },
        },
        {
          itemCodeableConcept: { coding: [expect.objectContaining({ code: '11124' })] },
          isActive: true,
          strength: { numerator: { value: 1000, unit: 'milligram', code: 'mg' } },
        },
      ],
    });
    // Sent again (a new control id): the same version, components not added twice.
    expect(await codes(admixture('C2', placed))).toEqual(['AA']);
    const [resent, ...others] = await numbered('MedicationRequest', CPOE, `C1-${tag}`);
    expect(others).toEqual([]);
    expect(resent!['meta'].versionId).toBe(prescription!['meta'].versionId);
    // The dose changed (XO, the same numbers): its components replaced, not added to.
    expect(
      await codes(admixture('C3', `ORC|XO|C1-${tag}^CPOE|||||||202503011200+0000`, '1250')),
    ).toEqual(['AA']);
    const [changed] = await numbered('MedicationRequest', CPOE, `C1-${tag}`);
    const ingredients = (changed!['contained'] as Record<string, any>[])[0]!['ingredient'];
    expect(ingredients).toHaveLength(2);
    expect(ingredients[1].strength.numerator.value).toBe(1250);
    // A component of no code says nothing of what it is: not an ingredient.
    expect(
      await codes(admixture('C4', `ORC|NW|C4-${tag}^CPOE`, '1000', 'RXC|A|^^RXNORM|5|mL')),
    ).toEqual(['AA']);
    const [uncoded] = await numbered('MedicationRequest', CPOE, `C4-${tag}`);
    expect((uncoded!['contained'] as Record<string, any>[])[0]!['ingredient']).toHaveLength(2);
    // A compound of no number (a CPOE that numbers none), sent again: filed once.
    const unnumbered = (control: string) =>
      rde(
        tag,
        control,
        'CU',
        'ORC|NW||||||||202503010800+0000',
        `RXE||${vancomycin}|1000||mg^milligram^UCUM`,
        'RXC|B|313002^Sodium Chloride 9 MG/ML Injectable Solution^RXNORM|250|mL^milliliter^UCUM',
        `RXC|A|${vancomycin}|1000|mg^milligram^UCUM`,
      );
    expect(await codes(unnumbered('CU1'), unnumbered('CU2'))).toEqual(['AA', 'AA']);
    const compounds = await feed.search(
      `MedicationRequest?subject=Patient/${await patientOf(tag, 'CU')}`,
    );
    expect(compounds.map((one) => one['medicationReference'])).toEqual([{ reference }]);

    // An OMP's pharmacy order (RXO) and its components, as an RXE's.
    const omp = [
      `MSH|^~\\&|CPOE|HOSP|PHARM|HOSP|202503010800+0000||OMP^O09^OMP_O09|C5-${tag}|P|2.5.1`,
      pid(tag, 'C'),
      `ORC|NW|C5-${tag}^CPOE|||||||202503010800+0000`,
      `RXO|${vancomycin}|1000||mg^milligram^UCUM`,
      'RXR|IV^Intravenous^HL70162',
      'RXC|B|313002^Sodium Chloride 9 MG/ML Injectable Solution^RXNORM|250|mL^milliliter^UCUM',
      `RXC|A|${vancomycin}|1000|mg^milligram^UCUM`,
    ].join('\r');
    expect(await codes(omp)).toEqual(['AA']);
    const [ordered] = await numbered('MedicationRequest', CPOE, `C5-${tag}`);
    expect(ordered!['medicationReference']).toEqual({ reference: reference });
    expect((ordered!['contained'] as Record<string, any>[])[0]!['ingredient']).toHaveLength(2);

    // A dispense's components (the RXC after its RXD), as its MedicationDispense's Medication.
    const rds = message('RDS^O13', 'PHARM');
    const dispense = (control: string) =>
      rds(
        tag,
        control,
        'C',
        `ORC|RE|C1-${tag}^CPOE|||||||202503010800+0000`,
        `RXD|1|${vancomycin}|202503011000+0000|1|BAG^Bag`,
        'NTE|1||Infuse over 2 hours',
        'RXR|IV^Intravenous^HL70162',
        'RXC|B|313002^Sodium Chloride 9 MG/ML Injectable Solution^RXNORM|250|mL^milliliter^UCUM',
        `RXC|A|${vancomycin}|1250|mg^milligram^UCUM`,
      );
    expect(await codes(dispense('C6'), dispense('C7'))).toEqual(['AA', 'AA']);
    const [handed, ...twice] = await numbered('MedicationDispense', CPOE, `C1-${tag}/dispense/1`);
    expect(twice).toEqual([]);
    expect(handed).toMatchObject({
      // The NTE after its RXD (dropped until 2026-12-07), once though sent twice.
      note: [{ text: 'Infuse over 2 hours' }],
      medicationReference: { reference },
      contained: [
        {
          resourceType: 'Medication',
          code: { coding: [expect.objectContaining({ code: '11124' })] },
          ingredient: [
            { itemCodeableConcept: { coding: [expect.objectContaining({ code: '313002' })] } },
            { strength: { numerator: { value: 1250 } } },
          ],
        },
      ],
    });
    expect((handed!['contained'] as Record<string, any>[])[0]!['ingredient']).toHaveLength(2);
  });
});
