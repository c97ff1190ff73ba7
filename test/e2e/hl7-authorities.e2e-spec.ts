import { randomUUID } from 'node:crypto';
import { openHl7Feed, type Hl7Feed } from '../support/hl7-feed.js';
import { msaOf } from '../support/mllp.js';

/**
 * One assigning authority, named two ways: an HD carries a namespace id (HD-1) and a universal
 * id (HD-2/3) for the same authority, and feeds differ in which they send (the ADT system both,
 * the lab its namespace alone). Each gives its own identifier system; the patient must stay one.
 */
describe('HL7 v2 assigning authorities named by namespace and by universal id', () => {
  let feed: Hl7Feed;

  beforeAll(async () => {
    feed = await openHl7Feed();
  });

  afterAll(() => feed.close());

  async function send(...messages: string[]): Promise<string[]> {
    return (await feed.send(...messages)).map((ack) => msaOf(ack).code);
  }

  const adt = (control: string, cx: string, family: string) =>
    [
      `MSH|^~\\&|ADTSYS|HOSP|CV|CV|20261206083000||ADT^A28^ADT_A05|${control}|P|2.5.1`,
      `EVN|A28|20261206083000`,
      `PID|1||${cx}||${family}^Fay||19800412|F`,
    ].join('\r');
  const oru = (control: string, cx: string, order: string) =>
    [
      `MSH|^~\\&|LAB|LABF|CV|CV|20261206100000||ORU^R01^ORU_R01|${control}|P|2.5.1`,
      `PID|1||${cx}||Five^Fay`,
      `OBR|1||${order}^LAB|2345-7^Glucose^LN|||20261206090000||||||||||||||||||F`,
      `OBX|1|NM|2345-7^Glucose^LN||99|mg/dL||||||F`,
    ].join('\r');

  const patientsHolding = (value: string) => feed.search(`Patient?identifier=${value}`);

  async function subjectOfResult(order: string): Promise<string> {
    const report = await feed.one(`DiagnosticReport?identifier=${encodeURIComponent(order)}`);
    return report['subject'].reference;
  }

  it('files a namespace-only result under the patient stored by the universal id', async () => {
    const tag = randomUUID().slice(0, 8);
    const mrn = `A-${tag}`;
    expect(
      await send(adt(`A1-${tag}`, `${mrn}^^^HOSPA&2.16.840.1.113883.19.5&ISO^MR`, 'Five')),
    ).toEqual(['AA']);
    const [patient, ...others] = await patientsHolding(mrn);
    expect(others).toHaveLength(0);
    expect(patient!.identifier).toEqual([
      {
        system: 'urn:oid:2.16.840.1.113883.19.5',
        value: mrn,
        type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'MR' }] },
        assigner: { display: 'HOSPA' },
      },
    ]);
    expect(await send(oru(`R1-${tag}`, `${mrn}^^^HOSPA^MR`, `O1-${tag}`))).toEqual(['AA']);
    expect(await patientsHolding(mrn)).toHaveLength(1);
    expect(await subjectOfResult(`O1-${tag}`)).toBe(`Patient/${patient!.id}`);
  });

  it('finds a patient stored by the namespace when the universal id comes, and keeps that', async () => {
    const tag = randomUUID().slice(0, 8);
    const mrn = `B-${tag}`;
    expect(await send(adt(`B1-${tag}`, `${mrn}^^^HOSPB^MR`, 'Six'))).toEqual(['AA']);
    const [first] = await patientsHolding(mrn);
    expect(first!.identifier[0].system).toBe('urn:carevault:v2:assigning-authority:HOSPB');
    expect(
      await send(adt(`B2-${tag}`, `${mrn}^^^HOSPB&2.16.840.1.113883.19.6&ISO^MR`, 'Six')),
    ).toEqual(['AA']);
    const [patient, ...others] = await patientsHolding(mrn);
    expect(others).toHaveLength(0);
    expect(patient!.id).toBe(first!.id);
    // One identifier, now under the universal id, not the same MRN twice.
    expect(patient!.identifier).toEqual([
      expect.objectContaining({
        system: 'urn:oid:2.16.840.1.113883.19.6',
        value: mrn,
        assigner: { display: 'HOSPB' },
      }),
    ]);
    // And a feed that still sends the namespace alone finds it there.
    expect(await send(oru(`B3-${tag}`, `${mrn}^^^HOSPB^MR`, `O2-${tag}`))).toEqual(['AA']);
    expect(await subjectOfResult(`O2-${tag}`)).toBe(`Patient/${first!.id}`);
  });

  it('keeps apart the same value from authorities of other namespaces', async () => {
    const tag = randomUUID().slice(0, 8);
    const mrn = `C-${tag}`;
    expect(
      await send(
        adt(`C1-${tag}`, `${mrn}^^^HOSPC&2.16.840.1.113883.19.7&ISO^MR`, 'Seven'),
        adt(`C2-${tag}`, `${mrn}^^^CLINIC^MR`, 'Other'),
        // The same universal id under another namespace id names that authority all the same.
        adt(`C3-${tag}`, `${mrn}^^^HC&2.16.840.1.113883.19.7&ISO^MR`, 'Seven'),
      ),
    ).toEqual(['AA', 'AA', 'AA']);
    const patients = await patientsHolding(mrn);
    expect(patients.map((patient) => patient['name'][0].family).sort()).toEqual(['Other', 'Seven']);
  });
});
