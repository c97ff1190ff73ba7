import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { tokenFor } from '../support/auth.js';
import { openHl7Feed, type Hl7Feed } from '../support/hl7-feed.js';
import { authorizedHttp } from '../support/http.js';
import { msaOf } from '../support/mllp.js';

const SAMPLES = join(process.cwd(), '..', 'shared', 'hl7-samples', 'fhir-converter');
const sample = (file: string) => readFileSync(join(SAMPLES, file), 'utf8');

/**
 * A sample as another message of its sender: its own control id (one sent by another spec on
 * this worker's database would be answered as a resend), `replaced` strings swapped (the order
 * numbers, kept apart from other specs'), and the patient's PID swapped for `pid`.
 */
const resent = (file: string, controlId: string, pid: string, replaced: [string, string][]) => {
  const [msh, ...rest] = sample(file).split('\n');
  const fields = msh!.split('|');
  fields[9] = controlId;
  const text = [
    fields.join('|'),
    ...rest.map((line) => (line.startsWith('PID|') ? pid : line)),
  ].join('\n');
  return replaced.reduce((message, [from, to]) => message.replaceAll(from, to), text);
};

/**
 * What a clinical safety review of the inbound feeds found could show a clinician the wrong
 * patient's data, or lose a result's or diagnosis's meaning, filed through MLLP and read back.
 */
describe('HL7 v2 feeds: wrong patient and lost meaning', () => {
  let feed: Hl7Feed;

  beforeAll(async () => {
    feed = await openHl7Feed();
  });

  afterAll(() => feed.close());

  const codes = async (...messages: string[]) =>
    (await feed.send(...messages)).map((ack) => msaOf(ack).code);

  const patientsHolding = (system: string, value: string) =>
    feed.search(`Patient?identifier=${encodeURIComponent(`${system}|${value}`)}`);

  const HOSP = 'urn:oid:2.16.840.1.113883.19.41';

  it("does not file one patient's PID and results into another's who shares an SSN", async () => {
    const tag = randomUUID().slice(0, 8);
    const ssn = `9${tag}`;
    const pid = (mrn: string, family: string) =>
      `PID|1||${mrn}^^^HOSP&2.16.840.1.113883.19.41&ISO^MR~${ssn}^^^USSSA^SS||${family}^Pat||19700101|F`;
    const adt = (control: string, mrn: string, family: string) =>
      [
        `MSH|^~\\&|ADT|HOSP|CV|CV|20261206080000+0000||ADT^A28^ADT_A05|${control}-${tag}|P|2.5.1`,
        'EVN|A28|20261206080000+0000',
        pid(mrn, family),
      ].join('\r');
    const oru = (control: string, mrn: string, family: string) =>
      [
        `MSH|^~\\&|LAB|LABF|CV|CV|20261206100000+0000||ORU^R01^ORU_R01|${control}-${tag}|P|2.5.1`,
        pid(mrn, family),
        `OBR|1||F-${control}-${tag}^LAB|2823-3^Potassium^LN|||20261206090000+0000||||||||||||||||||F`,
        'OBX|1|NM|2823-3^Potassium^LN||6.9|mmol/L|3.5-5.1|HH|||F',
      ].join('\r');
    expect(await codes(adt('A1', `A-${tag}`, 'Alice'))).toEqual(['AA']);
    const [alice] = await patientsHolding(HOSP, `A-${tag}`);
    // Bob, registered under his own MRN with Alice's SSN (a typo, a shared placeholder).
    const acks = await feed.send(adt('B1', `B-${tag}`, 'Bob'), oru('B2', `B-${tag}`, 'Bob'));
    expect(acks.map((ack) => msaOf(ack).code)).toEqual(['AE', 'AE']);
    expect(acks[1]).toContain('205^');
    expect(acks[1]).toContain('another medical record number (MR) of the same authority');
    const stored = await feed.one(`Patient?_id=${String(alice!['id'])}`);
    expect(stored['name'][0].family).toBe('Alice');
    expect(stored['meta'].versionId).toBe('1');
    expect(await patientsHolding(HOSP, `B-${tag}`)).toHaveLength(0);
    expect(await feed.search(`DiagnosticReport?subject=Patient/${String(alice!['id'])}`)).toEqual(
      [],
    );
    // Alice's own results, by her MRN and the SSN, are hers as before.
    expect(await codes(oru('A2', `A-${tag}`, 'Alice'))).toEqual(['AA']);
    expect(
      await feed.search(`DiagnosticReport?subject=Patient/${String(alice!['id'])}`),
    ).toHaveLength(1);
  });

  it('takes a new MRN sent beside one the patient holds, and a PID of an SSN alone', async () => {
    const tag = randomUUID().slice(0, 8);
    const ssn = `7${tag}`;
    const hosp = (mrn: string) => `${mrn}-${tag}^^^HOSP&2.16.840.1.113883.19.41&ISO^MR`;
    const a08 = (control: string, hour: string, ids: string) =>
      [
        `MSH|^~\\&|ADT|HOSP|CV|CV|20261206${hour}0000+0000||ADT^A08^ADT_A01|${control}-${tag}|P|2.5.1`,
        `EVN|A08|20261206${hour}0000+0000`,
        `PID|1||${ids}||Twin^Numbers||19700101|F`,
      ].join('\r');
    const sent = await codes(
      // One patient with two numbers of the hospital, as its ADT said in one PID.
      a08('N1', '08', `${hosp('A')}~${hosp('B')}~${ssn}^^^USSSA^SS`),
      // A third number beside the first: the patient's, as beside a patient's only one.
      a08('N2', '09', `${hosp('A')}~${hosp('C')}`),
      // A feed that sends the SSN alone.
      a08('N3', '10', `${ssn}^^^USSSA^SS`),
    );
    expect(sent).toEqual(['AA', 'AA', 'AA']);
    const [patient] = await patientsHolding(HOSP, `C-${tag}`);
    expect((await patientsHolding(HOSP, `B-${tag}`)).map((one) => one['id'])).toEqual([
      patient!['id'],
    ]);
    // A fourth beside none of them, matched on the SSN alone, is still another patient's.
    const [ack] = await feed.send(a08('N4', '11', `${hosp('D')}~${ssn}^^^USSSA^SS`));
    expect(msaOf(ack!).code).toBe('AE');
    expect(await patientsHolding(HOSP, `D-${tag}`)).toHaveLength(0);
  });

  it('takes a new MRN of another authority for a patient holding one of no system', async () => {
    const tag = randomUUID().slice(0, 8);
    const http = authorizedHttp(await tokenFor(feed.testApp, 'doctor'));
    const mr = {
      coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'MR' }],
    };
    // Registered through FHIR with a chart number its app gave no system (R4 allows it).
    const created = await http('POST', `${feed.testApp.url}/fhir/Patient`, {
      body: {
        resourceType: 'Patient',
        identifier: [
          { system: HOSP, value: `A-${tag}`, type: mr },
          { value: `Z-${tag}`, type: mr },
        ],
        name: [{ family: 'Systemless' }],
      },
    });
    expect(created.status).toBe(201);
    // The lab's first result gives the patient its own number: no authority of the chart's.
    const sent = await codes(
      [
        `MSH|^~\\&|LAB|LABF|CV|CV|20261206100000+0000||ORU^R01^ORU_R01|S1-${tag}|P|2.5.1`,
        `PID|1||A-${tag}^^^HOSP&2.16.840.1.113883.19.41&ISO^MR~L-${tag}^^^LAB^MR||Systemless`,
        `OBR|1||F-${tag}^LAB|2823-3^Potassium^LN|||20261206090000+0000||||||||||||||||||F`,
        'OBX|1|NM|2823-3^Potassium^LN||4.1|mmol/L|3.5-5.1|N|||F',
      ].join('\r'),
    );
    expect(sent).toEqual(['AA']);
    const [patient] = await patientsHolding(HOSP, `A-${tag}`);
    expect(patient!['id']).toBe(created.body.id);
  });

  it('still merges (A40) a survivor found by the number it shares with the prior patient', async () => {
    const tag = randomUUID().slice(0, 8);
    const ssn = `8${tag}`;
    const sent = await codes(
      [
        `MSH|^~\\&|ADT|HOSP|CV|CV|20261206080000+0000||ADT^A28^ADT_A05|M1-${tag}|P|2.5.1`,
        'EVN|A28|20261206080000+0000',
        `PID|1||A-${tag}^^^HOSP&2.16.840.1.113883.19.41&ISO^MR~${ssn}^^^USSSA^SS||Prior^Pat`,
      ].join('\r'),
      [
        `MSH|^~\\&|ADT|HOSP|CV|CV|20261206090000+0000||ADT^A40^ADT_A39|M2-${tag}|P|2.5.1`,
        'EVN|A40|20261206090000+0000',
        `PID|1||B-${tag}^^^HOSP&2.16.840.1.113883.19.41&ISO^MR~${ssn}^^^USSSA^SS||Survivor^Pat`,
        `MRG|A-${tag}^^^HOSP&2.16.840.1.113883.19.41&ISO^MR`,
      ].join('\r'),
    );
    expect(sent).toEqual(['AA', 'AA']);
    const [survivor] = await patientsHolding(HOSP, `B-${tag}`);
    expect((await patientsHolding(HOSP, `A-${tag}`)).map((one) => one['id'])).toEqual([
      survivor!['id'],
    ]);
  });

  it('merges (A40) into a known survivor whose PID sends the number the prior patient holds', async () => {
    const tag = randomUUID().slice(0, 8);
    const ssn = `6${tag}^^^USSSA^SS`;
    const mrn = (who: string) => `${who}-${tag}^^^HOSP&2.16.840.1.113883.19.41&ISO^MR`;
    const header = (control: string, type: string, hour: string) =>
      `MSH|^~\\&|ADT|HOSP|CV|CV|20261206${hour}0000+0000||${type}|${control}-${tag}|P|2.5.1`;
    // The duplicate: an emergency registration made without the SSN the first record holds.
    const sent = await codes(
      [
        header('K1', 'ADT^A28^ADT_A05', '08'),
        `PID|1||${mrn('A')}~${ssn}||Prior^Pat||19700101|F`,
      ].join('\r'),
      [header('K2', 'ADT^A28^ADT_A05', '09'), `PID|1||${mrn('B')}||Survivor^Pat||19700101|F`].join(
        '\r',
      ),
      [
        header('K3', 'ADT^A40^ADT_A39', '10'),
        'EVN|A40|20261206100000+0000',
        `PID|1||${mrn('B')}~${ssn}||Survivor^Pat||19700101|F`,
        `MRG|${mrn('A')}`,
      ].join('\r'),
    );
    expect(sent).toEqual(['AA', 'AA', 'AA']);
    const [survivor] = await patientsHolding(HOSP, `B-${tag}`);
    for (const [system, value] of [
      [HOSP, `A-${tag}`],
      ['urn:carevault:v2:assigning-authority:USSSA', `6${tag}`],
    ] as const) {
      expect((await patientsHolding(system, value)).map((one) => one['id'])).toEqual([
        survivor!['id'],
      ]);
    }
  });

  it('takes the survivor number of a merge made the other way (A40) as current, and its updates', async () => {
    const tag = randomUUID().slice(0, 8);
    const mrn = (who: string) => `${who}-${tag}^^^HOSP&2.16.840.1.113883.19.41&ISO^MR`;
    const message = (control: string, event: string, hour: string, ...rest: string[]) =>
      [
        `MSH|^~\\&|ADT|HOSP|CV|CV|20261206${hour}0000+0000||ADT^${event}|${control}-${tag}|P|2.5.1`,
        `EVN|${event}|20261206${hour}0000+0000`,
        ...rest,
      ].join('\r');
    const pid = (who: string, family: string) => `PID|1||${mrn(who)}||${family}^Pat||19700101|F`;
    // A registrar merges A into B, finds it was the wrong way round, and merges B into A.
    expect(
      await codes(
        message('W1', 'A28', '08', pid('A', 'Alpha')),
        message('W2', 'A28', '09', pid('B', 'Alpha')),
        message('W3', 'A40', '10', pid('B', 'Alpha'), `MRG|${mrn('A')}`),
        message('W4', 'A40', '11', pid('A', 'Alpha'), `MRG|${mrn('B')}`),
        // The registration system's next update names the patient by A, the number it kept.
        message('W5', 'A08', '12', pid('A', 'Renamed'), 'PV1|1|O'),
      ),
    ).toEqual(['AA', 'AA', 'AA', 'AA', 'AA']);
    const [patient] = await patientsHolding(HOSP, `A-${tag}`);
    expect((await patientsHolding(HOSP, `B-${tag}`)).map((one) => one['id'])).toEqual([
      patient!['id'],
    ]);
    const uses = Object.fromEntries(
      patient!['identifier'].map((one: { value: string; use?: string }) => [one.value, one.use]),
    );
    expect(uses).toEqual({ [`A-${tag}`]: undefined, [`B-${tag}`]: 'old' });
    expect(patient!['name'][0].family).toBe('Renamed');
  });

  it('keeps the comparator of a titer (SN) below the first dilution', async () => {
    const tag = randomUUID().slice(0, 8);
    const sent = await codes(
      [
        `MSH|^~\\&|LAB|LABF|CV|CV|20261206100000+0000||ORU^R01^ORU_R01|T1-${tag}|P|2.5.1`,
        `PID|1||T-${tag}^^^HOSP&2.16.840.1.113883.19.41&ISO^MR||Titer^Tom`,
        `OBR|1||F-${tag}^LAB|5370-2^Measles IgG titer^LN|||20261206090000+0000||||||||||||||||||F`,
        'OBX|1|SN|5370-2^Measles IgG titer^LN||<^1^:^10||||||F',
      ].join('\r'),
    );
    expect(sent).toEqual(['AA']);
    const [patient] = await patientsHolding(HOSP, `T-${tag}`);
    const result = await feed.one(`Observation?subject=Patient/${String(patient!['id'])}`);
    expect(result['valueRatio']).toEqual({
      numerator: { value: 1, comparator: '<' },
      denominator: { value: 10 },
    });
  });

  it('keeps an allergy and a diagnosis sent as text alone once, however often an A08 repeats them', async () => {
    const tag = randomUUID().slice(0, 8);
    const a08 = (control: string, hour: string) =>
      [
        `MSH|^~\\&|ADT|HOSP|CV|CV|20261206${hour}0000+0000||ADT^A08^ADT_A01|${control}-${tag}|P|2.5.1`,
        `EVN|A08|20261206${hour}0000+0000`,
        `PID|1||X-${tag}^^^HOSP&2.16.840.1.113883.19.41&ISO^MR||Text^Tess`,
        'AL1|1|DA|^PENICILLIN|SV|ANAPHYLAXIS',
        // Another allergen whose text begins with the first one's.
        'AL1|2|DA|^PENICILLIN G|MI|RASH',
        'DG1|1||^Chest pain',
        // v2.3 feeds send the diagnosis's description in DG1-4, DG1-3 empty.
        'DG1|2|||Shortness of breath',
      ].join('\r');
    expect(await codes(a08('X1', '08'), a08('X2', '09'), a08('X3', '10'))).toEqual([
      'AA',
      'AA',
      'AA',
    ]);
    const [patient] = await patientsHolding(HOSP, `X-${tag}`);
    const allergies = await feed.search(
      `AllergyIntolerance?patient=Patient/${String(patient!['id'])}`,
    );
    expect(allergies.map((one) => one['code'].text).sort()).toEqual(['PENICILLIN', 'PENICILLIN G']);
    const severe = allergies.find((one) => one['code'].text === 'PENICILLIN')!;
    expect(severe['criticality']).toBe('high');
    const diagnoses = await feed.search(`Condition?subject=Patient/${String(patient!['id'])}`);
    expect(diagnoses.map((one) => one['code'].text).sort()).toEqual([
      'Chest pain',
      'Shortness of breath',
    ]);
  });

  it('keeps an allergy and a diagnosis whose text has no letter or digit once too', async () => {
    const tag = randomUUID().slice(0, 8);
    // A placeholder some feeds send for an allergen or a diagnosis not yet named: search's
    // :text indexes letters and digits only, so it never finds such a text.
    const a08 = (control: string, hour: string) =>
      [
        `MSH|^~\\&|ADT|HOSP|CV|CV|20261206${hour}0000+0000||ADT^A08^ADT_A01|${control}-${tag}|P|2.5.1`,
        `EVN|A08|20261206${hour}0000+0000`,
        `PID|1||Q-${tag}^^^HOSP&2.16.840.1.113883.19.41&ISO^MR||Text^Quinn`,
        'AL1|1|DA|^?|SV|ANAPHYLAXIS',
        'AL1|2|DA|^--|MI|RASH',
        'DG1|1|||?',
      ].join('\r');
    expect(await codes(a08('Q1', '08'), a08('Q2', '09'), a08('Q3', '10'))).toEqual([
      'AA',
      'AA',
      'AA',
    ]);
    const [patient] = await patientsHolding(HOSP, `Q-${tag}`);
    const id = String(patient!['id']);
    const allergies = await feed.search(`AllergyIntolerance?patient=Patient/${id}`);
    expect(allergies.map((one) => one['code'].text).sort()).toEqual(['--', '?']);
    const diagnoses = await feed.search(`Condition?subject=Patient/${id}`);
    expect(diagnoses.map((one) => one['code'].text)).toEqual(['?']);
  });

  it("keeps each stay's diagnosis of one code as that stay's", async () => {
    const tag = randomUUID().slice(0, 8);
    const message = (type: string, control: string, day: string, pv1: string[]) =>
      [
        `MSH|^~\\&|ADT|HOSP|CV|CV|202612${day}080000+0000||ADT^${type}^ADT_A01|${control}-${tag}|P|2.5.1`,
        `EVN|${type}|202612${day}080000+0000`,
        `PID|1||D-${tag}^^^HOSP&2.16.840.1.113883.19.41&ISO^MR||Dx^Dan`,
        ...pv1,
        `DG1|1||J18.9^Pneumonia, unspecified organism^I10||202612${day}090000+0000|A`,
      ].join('\r');
    const stay = (visit: string) => [
      `PV1|1|I|4E^136^B^GHH||||||||||||||||${visit}-${tag}^^^HOSP&2.16.840.1.113883.19.41&ISO^VN`,
    ];
    expect(
      await codes(
        message('A01', 'V1', '01', stay('V1')),
        // A patient update of no visit (A31) repeats the diagnosis: it stays the first stay's.
        message('A31', 'U1', '02', []),
        message('A01', 'V2', '05', stay('V2')),
        // The same list sent again with an update of the second stay piles nothing up.
        message('A08', 'V3', '06', stay('V2')),
      ),
    ).toEqual(['AA', 'AA', 'AA', 'AA']);
    for (const [visit, day] of [
      ['V1', '02'],
      ['V2', '06'],
    ] as const) {
      const encounter = await feed.one(
        `Encounter?identifier=${encodeURIComponent(`${HOSP}|${visit}-${tag}`)}`,
      );
      const diagnosis = await feed.one(`Condition?encounter=Encounter/${String(encounter['id'])}`);
      expect(diagnosis['recordedDate']).toBe(`2026-12-${day}T09:00:00+00:00`);
    }
    const [patient] = await patientsHolding(HOSP, `D-${tag}`);
    expect(await feed.search(`Condition?subject=Patient/${String(patient!['id'])}`)).toHaveLength(
      2,
    );
  });

  it("shows the prior patient's chart on the survivor of a merge (A40), each allergy once", async () => {
    const tag = randomUUID().slice(0, 8);
    const mrn = (who: string) => `${who}-${tag}^^^HOSP&2.16.840.1.113883.19.41&ISO^MR`;
    const header = (control: string, type: string, hour: string) =>
      `MSH|^~\\&|ADT|HOSP|CV|CV|20251207${hour}0000+0000||${type}|${control}-${tag}|P|2.5.1`;
    const a28 = (control: string, who: string, hour: string, ...rest: string[]) =>
      [
        header(control, 'ADT^A28^ADT_A05', hour),
        `EVN|A28|20251207${hour}0000+0000`,
        `PID|1||${mrn(who)}||Dup^Pat||19700101|F`,
        ...rest,
      ].join('\r');
    const penicillin = 'AL1|1|DA|7980^Penicillin^RXNORM|SV|ANAPHYLAXIS';
    expect(
      await codes(
        // The duplicate registration holds the allergy list and a result; the survivor holds
        // penicillin as well.
        a28('P1', 'PRIOR', '08', penicillin, 'AL1|2|DA|2670^Codeine^RXNORM|MO|NAUSEA'),
        [
          `MSH|^~\\&|LAB|LABF|CV|CV|20251207090000+0000||ORU^R01^ORU_R01|P2-${tag}|P|2.5.1`,
          `PID|1||${mrn('PRIOR')}||Dup^Pat||19700101|F`,
          `OBR|1||F-${tag}^LAB|2823-3^Potassium^LN|||20251207085000+0000||||||||||||||||||F`,
          'OBX|1|NM|2823-3^Potassium^LN||4.1|mmol/L|3.5-5.1|N|||F',
        ].join('\r'),
        a28('S1', 'SURV', '10', penicillin),
        [
          header('M1', 'ADT^A40^ADT_A39', '11'),
          'EVN|A40|20251207110000+0000',
          `PID|1||${mrn('SURV')}||Dup^Pat||19700101|F`,
          `MRG|${mrn('PRIOR')}`,
        ].join('\r'),
        // The feed's next list for the survivor: penicillin is found once, and updated.
        [
          header('S2', 'ADT^A08^ADT_A01', '12'),
          'EVN|A08|20251207120000+0000',
          `PID|1||${mrn('SURV')}||Dup^Pat||19700101|F`,
          'AL1|1|DA|7980^Penicillin^RXNORM|SV|HIVES',
        ].join('\r'),
      ),
    ).toEqual(['AA', 'AA', 'AA', 'AA', 'AA']);
    const [survivor] = await patientsHolding(HOSP, `SURV-${tag}`);
    const id = String(survivor!['id']);
    const allergies = await feed.search(`AllergyIntolerance?patient=Patient/${id}`);
    expect(allergies.map((one) => one['code'].coding[0].display).sort()).toEqual([
      'Codeine',
      'Penicillin',
    ]);
    // The A08's reaction, the newest message's: taken, not left as the older A28s had it.
    const penicillinOf = allergies.find((one) => one['code'].coding[0].display === 'Penicillin');
    expect(penicillinOf!['reaction'][0].manifestation).toEqual([{ text: 'HIVES' }]);
    const result = await feed.one(`Observation?subject=Patient/${id}`);
    expect(result['valueQuantity'].value).toBe(4.1);
    expect(await feed.one(`DiagnosticReport?subject=Patient/${id}`)).toBeDefined();
  });

  it("files a report the lab withdrew as the wrong patient's (W) under the right one", async () => {
    const tag = randomUUID().slice(0, 8);
    // The lab's correction of a wrong patient: each result withdrawn (OBX-11 W, which table 0123
    // has no report status for), then the report sent again under the right patient.
    const oru = (control: string, who: string, status: string, hour: string) =>
      [
        `MSH|^~\\&|LAB|LABF|CV|CV|20251207${hour}0000+0000||ORU^R01^ORU_R01|${control}-${tag}|P|2.5.1`,
        `PID|1||${who}-${tag}^^^HOSP&2.16.840.1.113883.19.41&ISO^MR||${who}^Pat||19700101|F`,
        `OBR|1||W-${tag}^LAB|2823-3^Potassium^LN|||20251207080000+0000||||||||||||||||||${status === 'W' ? 'C' : status}`,
        `OBX|1|NM|2823-3^Potassium^LN||6.9|mmol/L|3.5-5.1|HH|||${status}`,
      ].join('\r');
    expect(
      await codes(
        oru('W1', 'ALICE', 'F', '09'),
        oru('W2', 'ALICE', 'W', '10'),
        oru('W3', 'BOB', 'F', '11'),
      ),
    ).toEqual(['AA', 'AA', 'AA']);
    const [alice] = await patientsHolding(HOSP, `ALICE-${tag}`);
    const [bob] = await patientsHolding(HOSP, `BOB-${tag}`);
    const report = await feed.one(`DiagnosticReport?subject=Patient/${String(bob!['id'])}`);
    expect(report['status']).toBe('final');
    const result = await feed.one(`Observation?subject=Patient/${String(bob!['id'])}`);
    expect([result['status'], result['valueQuantity'].value]).toEqual(['final', 6.9]);
    // Alice's chart holds neither.
    expect(await feed.search(`DiagnosticReport?subject=Patient/${String(alice!['id'])}`)).toEqual(
      [],
    );
    expect(await feed.search(`Observation?subject=Patient/${String(alice!['id'])}`)).toEqual([]);
  });

  it('keeps an allergy an A60 sends as text alone once, and deletes it by that text', async () => {
    const tag = randomUUID().slice(0, 8);
    const a60 = (control: string, action: string) =>
      [
        `MSH|^~\\&|ADT|HOSP|CV|CV|20251207090000+0000||ADT^A60^ADT_A60|${control}-${tag}|P|2.5.1`,
        `PID|1||I-${tag}^^^HOSP&2.16.840.1.113883.19.41&ISO^MR||Iam^Pat`,
        `IAM|1|DA|^PENICILLIN|SV||${action}`,
        `IAM|2|DA|^PENICILLIN G|MI||${action === 'D' ? 'X' : action}`,
      ].join('\r');
    expect(await codes(a60('I1', 'A'), a60('I2', 'X'), a60('I3', 'U'))).toEqual(['AA', 'AA', 'AA']);
    const [patient] = await patientsHolding(HOSP, `I-${tag}`);
    const listed = () =>
      feed.search(`AllergyIntolerance?patient=Patient/${String(patient!['id'])}`);
    expect((await listed()).map((one) => one['code'].text).sort()).toEqual([
      'PENICILLIN',
      'PENICILLIN G',
    ]);
    expect(await codes(a60('I4', 'D'))).toEqual(['AA']);
    const after = await listed();
    const byText = (a: string[], b: string[]) => a[0]!.localeCompare(b[0]!);
    expect(
      after
        .map((one) => [one['code'].text, one['verificationStatus']?.coding[0].code])
        .sort(byText),
    ).toEqual([
      ['PENICILLIN', 'entered-in-error'],
      ['PENICILLIN G', undefined],
    ]);
  });

  /** A PID of a test's own patients (`tag`), under the hospital's MRNs. */
  const pidOf = (tag: string) => (mrn: string, family: string) =>
    `PID|1||${mrn}-${tag}^^^HOSP&2.16.840.1.113883.19.41&ISO^MR||${family}^Pat||19700101|F`;

  /**
   * ORM-O01-01's order (ORC-2 1101, ORC-3 1201) under numbers of a test's own (`tag`), for one of
   * its patients, with an order control (ORC-1) and, but for NW, that order status (ORC-5).
   */
  const sampleOrder =
    (tag: string) =>
    (control: string, mrn: string, family: string, orderControl = 'NW') =>
      resent('ORM-O01-01.hl7', `${control}-${tag}`, pidOf(tag)(mrn, family), [
        ['1101^GHHPlacer', `P${tag}^GHHPlacer`],
        ['1201^GHHFiller', `F${tag}^GHHFiller`],
        ['ORC|NW|', `ORC|${orderControl}|`],
        ['^GHHFiller||SC|', `^GHHFiller||${orderControl === 'NW' ? 'SC' : orderControl}|`],
      ]);

  it("refuses an order whose number another patient's order has (AE 205), leaving it theirs", async () => {
    const tag = randomUUID().slice(0, 8);
    const orm = sampleOrder(tag);
    expect(await codes(orm('O1', 'OA', 'Ordera'))).toEqual(['AA']);
    const [alice] = await patientsHolding(HOSP, `OA-${tag}`);
    const orders = (patient: Record<string, any> | undefined) =>
      feed.search(`ServiceRequest?subject=Patient/${String(patient!['id'])}`);
    const [order] = await orders(alice);
    // Bob's order under the same numbers (a reused number series, a wrong PID).
    const acks = await feed.send(orm('O2', 'OB', 'Orderb'));
    expect(msaOf(acks[0]!).code).toBe('AE');
    expect(acks[0]).toContain('205^');
    expect(acks[0]).toContain("another patient's order");
    const [bob] = await patientsHolding(HOSP, `OB-${tag}`);
    expect(bob ? await orders(bob) : []).toEqual([]);
    const kept = await orders(alice);
    expect(kept.map((one) => [one['id'], one['meta'].versionId])).toEqual([
      [order!['id'], order!['meta'].versionId],
    ]);
  });

  it("files an order under a number another patient's cancelled order had, then knows it as this one's", async () => {
    const tag = randomUUID().slice(0, 8);
    const orm = sampleOrder(tag);
    const orders = async (mrn: string) => {
      const [patient] = await patientsHolding(HOSP, `${mrn}-${tag}`);
      return feed.search(`ServiceRequest?subject=Patient/${String(patient!['id'])}`);
    };
    // Placed on the wrong patient, and cancelled: the number is free for the right one.
    expect(await codes(orm('C1', 'CA', 'Cancela'), orm('C2', 'CA', 'Cancela', 'CA'))).toEqual([
      'AA',
      'AA',
    ]);
    const [cancelled] = await orders('CA');
    expect(cancelled!['status']).toBe('revoked');
    expect(await codes(orm('C3', 'CB', 'Cancelb'))).toEqual(['AA']);
    const [placed] = await orders('CB');
    expect(placed).toMatchObject({ status: 'active' });
    // The right patient's next message of that number is about the right patient's order.
    expect(await codes(orm('C4', 'CB', 'Cancelb', 'CA'))).toEqual(['AA']);
    expect(await orders('CB')).toEqual([
      expect.objectContaining({ id: placed!['id'], status: 'revoked' }),
    ]);
    expect((await orders('CA')).map((one) => [one['id'], one['meta'].versionId])).toEqual([
      [cancelled!['id'], cancelled!['meta'].versionId],
    ]);
  });

  it("refuses a referral whose number (RF1-6) another patient's has, until that one is cancelled", async () => {
    const tag = randomUUID().slice(0, 8);
    const pid = pidOf(tag);
    const ref = (file: string, control: string, mrn: string, family: string) =>
      resent(file, `${control}-${tag}`, pid(mrn, family), [['226839^EPIC', `X${tag}^EPIC`]]);
    const referral = (control: string, mrn: string, family: string) =>
      ref('REF-I12-01.hl7', control, mrn, family);
    const acks = await feed.send(
      referral('F1', 'FA', 'Refera'),
      // Another patient's referral under the same number: until 2026-12-07 it took the first
      // patient's over.
      referral('F2', 'FB', 'Referb'),
      // The first one's cancelled (placed on the wrong patient): the number is the other's.
      ref('REF-I14-01.hl7', 'F3', 'FA', 'Refera'),
      referral('F4', 'FB', 'Referb'),
    );
    expect(acks.map((ack) => msaOf(ack).code)).toEqual(['AA', 'AE', 'AA', 'AA']);
    expect(acks[1]).toContain("RF1-6 names another patient's order");
    const statusOf = async (mrn: string) => {
      const [patient] = await patientsHolding(HOSP, `${mrn}-${tag}`);
      return (await feed.search(`ServiceRequest?subject=Patient/${String(patient!['id'])}`)).map(
        (request) => request['status'],
      );
    };
    expect(await statusOf('FA')).toEqual(['revoked']);
    expect(await statusOf('FB')).toEqual(['active']);
  });

  it("refuses a prescription or dispense whose number another patient's order has", async () => {
    const tag = randomUUID().slice(0, 8);
    const pid = pidOf(tag);
    // The samples' prescription and its dispense (ORC-2 1163422591), under a number of this test.
    const numbers: [string, string][] = [['1163422591^EPC', `R${tag}^EPC`]];
    const rde = (control: string, mrn: string, family: string) =>
      resent('RDE-O11-01.hl7', `${control}-${tag}`, pid(mrn, family), numbers);
    const rds = (control: string, mrn: string, family: string) =>
      resent('RDS-O13-01.hl7', `${control}-${tag}`, pid(mrn, family), numbers);
    expect(await codes(rde('R1', 'RA', 'Rxa'), rds('R2', 'RA', 'Rxa'))).toEqual(['AA', 'AA']);
    const [alice] = await patientsHolding(HOSP, `RA-${tag}`);
    const records = async (patient: Record<string, any> | undefined) =>
      patient
        ? [
            ...(await feed.search(`MedicationRequest?subject=Patient/${String(patient['id'])}`)),
            ...(await feed.search(`MedicationDispense?subject=Patient/${String(patient['id'])}`)),
          ].map((one) => [one['resourceType'], one['id'], one['meta'].versionId])
        : [];
    const hers = await records(alice);
    expect(hers.map(([type]) => type)).toEqual(['MedicationRequest', 'MedicationDispense']);
    // Bob's prescription, then his dispense alone, under Alice's order number.
    const acks = await feed.send(rde('R3', 'RB', 'Rxb'), rds('R4', 'RB', 'Rxb'));
    expect(acks.map((ack) => msaOf(ack).code)).toEqual(['AE', 'AE']);
    for (const ack of acks) {
      expect(ack).toContain('205^');
      expect(ack).toContain("another patient's order");
    }
    const [bob] = await patientsHolding(HOSP, `RB-${tag}`);
    expect(await records(bob)).toEqual([]);
    expect(await records(alice)).toEqual(hers);
    // A dispense alone (a pharmacy's RDS without its RXE, of an order not known here), then
    // Bob's under its number.
    const alone: [string, string][] = [['1163422591^EPC', `D${tag}^EPC`]];
    const dispense = (control: string, mrn: string, family: string) =>
      resent('RDS-O13-01.hl7', `${control}-${tag}`, pid(mrn, family), alone)
        .split('\n')
        .filter((line) => !line.startsWith('RXE|'))
        .join('\n');
    expect(await codes(dispense('D1', 'RA', 'Rxa'))).toEqual(['AA']);
    const withDispense = await records(alice);
    expect(withDispense).toHaveLength(3);
    const refused = await feed.send(dispense('D2', 'RB', 'Rxb'));
    expect(msaOf(refused[0]!).code).toBe('AE');
    expect(refused[0]).toContain("another patient's order");
    expect(await records(alice)).toEqual(withDispense);
  });
});
