import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { openHl7Feed, type Hl7Feed } from '../support/hl7-feed.js';
import { msaOf } from '../support/mllp.js';

/**
 * VXU^V04 as an immunization registry (IIS) and the EHRs feeding it send it, per CDC's HL7 2.5.1
 * Implementation Guide for Immunization Messaging (release 1.5) and the v2-to-FHIR IG's RXA, RXR,
 * ORC and OBX maps.
 */
/** This run's control ids for the samples (see sample). */
const RUN = randomUUID().slice(0, 8);
const FILES: string[] = [];

/**
 * A shared sample message, as it is (LF separators, a byte-order mark) but for its control id
 * (MSH-10), one of this run's per file: under its own, a spec on this worker's database that
 * sent it before (hl7-mllp sends every sample and counts what it stores) would have it answered
 * as a resend here, and this spec's sending it first would do the same to that one's.
 */
const sample = (file: string): string => {
  const text = readFileSync(
    join(process.cwd(), '..', 'shared', 'hl7-samples', 'fhir-converter', file),
    'utf8',
  );
  const [msh, ...rest] = text.split('\n');
  const fields = msh!.split('|');
  if (!FILES.includes(file)) FILES.push(file);
  fields[9] = `${RUN}-${FILES.indexOf(file)}`;
  return [fields.join('|'), ...rest].join('\n');
};

describe('HL7 VXU^V04 immunizations (CDC IG 1.5)', () => {
  let feed: Hl7Feed;

  beforeAll(async () => {
    feed = await openHl7Feed();
  });

  afterAll(() => feed.close());

  const vxu = (control: string, mrn: string, ...segments: string[]) =>
    [
      `MSH|^~\\&|EHR|CLINIC|IIS|STATE|20250301100000||VXU^V04^VXU_V04|${control}|P|2.5.1|||ER|AL`,
      `PID|1||${mrn}^^^CLINIC&2.16.41&ISO^MR||Shot^Kid||20200101|F`,
      ...segments,
    ].join('\r');

  const patientOfIn = async (mrn: string, authority: string) =>
    String(
      (
        await feed.one(
          `Patient?identifier=${encodeURIComponent(`urn:carevault:v2:assigning-authority:${encodeURIComponent(authority)}|${mrn}`)}`,
        )
      )['id'],
    );

  const patientOf = async (mrn: string) =>
    String(
      (await feed.one(`Patient?identifier=${encodeURIComponent(`urn:oid:2.16.41|${mrn}`)}`))['id'],
    );

  it("keeps each patient's refusal of their own, though CDC has every refusal's ORC-3 be 9999", async () => {
    const tag = randomUUID().slice(0, 8);
    const [kidA, kidB] = [`A-${tag}`, `B-${tag}`];
    // RXA-18 refusal reason (NIP002), RXA-20 RE; ORC-3 9999, as CDC IG 1.5 has it for a dose
    // not given.
    const refusal = (vaccine: string) =>
      `RXA|0|1|20250301||${vaccine}^CVX|999||||||||||||00^Parental decision^NIP002||RE|A`;
    const acks = await feed.send(
      vxu(`R1-${tag}`, kidA, 'ORC|RE||9999^CDC', refusal('03^MMR')),
      vxu(`R2-${tag}`, kidB, 'ORC|RE||9999^CDC', refusal('21^Varicella')),
    );
    expect(acks.map((ack) => msaOf(ack).code)).toEqual(['AA', 'AA']);
    const doses = async (mrn: string) =>
      Object.fromEntries(
        (await feed.search(`Immunization?patient=Patient/${await patientOf(mrn)}`)).map((dose) => [
          dose['vaccineCode'].coding[0].code,
          dose,
        ]),
      );
    const [ofA, ofB] = [await doses(kidA), await doses(kidB)];
    expect(Object.keys(ofA)).toEqual(['03']);
    expect(Object.keys(ofB)).toEqual(['21']);
    expect(ofA['03']).toMatchObject({
      status: 'not-done',
      statusReason: { coding: [{ code: '00' }] },
    });
    expect(ofB['21']).toMatchObject({ status: 'not-done' });
    // 9999 names no dose: it is not kept as the refusal's identifier.
    expect(ofA['03']['identifier']).toBeUndefined();
  });

  it("refuses (AE, ERR 205) a dose number (ORC-3) that is another patient's dose, as an order's", async () => {
    const tag = randomUUID().slice(0, 8);
    const [kidA, kidB] = [`A-${tag}`, `B-${tag}`];
    const given = (action: string) =>
      `RXA|0|1|20250302||20^DTaP^CVX|0.5|mL|||||||||||||CP|${action}`;
    const acks = await feed.send(
      vxu(`N1-${tag}`, kidA, `ORC|RE||N-${tag}^EHR`, 'RXA|0|1|20250301||08^HepB^CVX|0.5|mL'),
      // The same number sent for another patient (a sender's numbers reused, or the wrong
      // patient): until 2026-12-07 a second dose under it, which the next message of that
      // number could not tell from the first.
      vxu(`N2-${tag}`, kidB, `ORC|RE||N-${tag}^EHR`, given('A')),
      // Nor does that patient's deletion of the number delete the first one's dose.
      vxu(`N3-${tag}`, kidB, `ORC|RE||N-${tag}^EHR`, given('D')),
      // Once the first patient's dose is withdrawn (entered in error), the number is free.
      vxu(
        `N4-${tag}`,
        kidA,
        `ORC|RE||N-${tag}^EHR`,
        'RXA|0|1|20250301||08^HepB^CVX|0.5|mL|||||||||||||CP|D',
      ),
      vxu(`N5-${tag}`, kidB, `ORC|RE||N-${tag}^EHR`, given('A')),
      // The first patient's withdrawn dose sent again under the number the other's now has:
      // reviving it would leave two live doses under one number.
      vxu(`N6-${tag}`, kidA, `ORC|RE||N-${tag}^EHR`, 'RXA|0|1|20250301||08^HepB^CVX|0.5|mL'),
    );
    expect(acks.map((ack) => msaOf(ack).code)).toEqual(['AA', 'AE', 'AE', 'AA', 'AA', 'AE']);
    for (const refused of [acks[1], acks[2], acks[5]]) {
      expect(refused).toContain(
        "ERR|||205^Duplicate key identifier^HL70357|E||||ORC-3 (else ORC-2) names another patient's dose: correct the patient or the dose number",
      );
    }
    const statusOf = async (mrn: string) =>
      (await feed.search(`Immunization?patient=Patient/${await patientOf(mrn)}`)).map(
        (dose) => `${dose['vaccineCode'].coding[0].code} ${dose['status']}`,
      );
    expect(await statusOf(kidA)).toEqual(['08 entered-in-error']);
    expect(await statusOf(kidB)).toEqual(['20 completed']);
  });

  it("takes a merged (A40) patient's dose number as this patient's, not another's (no ERR 205)", async () => {
    const tag = randomUUID().slice(0, 8);
    const [prior, survivor] = [`P-${tag}`, `S-${tag}`];
    const dose = (lot: string) => `RXA|0|1|20250301||08^HepB^CVX|0.5|mL||||||||${lot}`;
    const acks = await feed.send(
      vxu(`M1-${tag}`, prior, `ORC|RE||M-${tag}^EHR`, dose('LOT1')),
      [
        `MSH|^~\\&|ADT|CLINIC|CV|CV|20250301110000||ADT^A40^ADT_A39|M2-${tag}|P|2.5.1`,
        'EVN|A40|20250301110000',
        `PID|1||${survivor}^^^CLINIC&2.16.41&ISO^MR||Shot^Kid||20200101|F`,
        `MRG|${prior}^^^CLINIC&2.16.41&ISO^MR`,
      ].join('\r'),
      // The dose's correction under the surviving record: the same dose, not another's.
      vxu(`M3-${tag}`, survivor, `ORC|RE||M-${tag}^EHR`, dose('LOT2')),
    );
    expect(acks.map((ack) => msaOf(ack).code)).toEqual(['AA', 'AA', 'AA']);
    const doses = await feed.search(`Immunization?identifier=${encodeURIComponent(`M-${tag}`)}`);
    expect(doses.map((found) => [found['lotNumber'], found['patient'].reference])).toEqual([
      ['LOT2', `Patient/${await patientOf(survivor)}`],
    ]);
  });

  it('knows a dose by its filler order number (ORC-3), as CDC has it, not by the order it was placed under', async () => {
    const tag = randomUUID().slice(0, 8);
    const mrn = `C-${tag}`;
    // One order (ORC-2) for two doses, each its own filler number; then the second deleted by
    // ORC-3 alone.
    const dose = (filler: string, vaccine: string, action = 'A') =>
      [
        `ORC|RE|P-${tag}^EHR|${filler}-${tag}^EHR`,
        `RXA|0|1|20250301||${vaccine}^CVX|0.5|mL|||||||||||||CP|${action}`,
      ].join('\r');
    const acks = await feed.send(
      vxu(`F1-${tag}`, mrn, dose('F1', '08^HepB'), dose('F2', '20^DTaP')),
      vxu(
        `F2-${tag}`,
        mrn,
        `ORC|RE||F2-${tag}^EHR`,
        'RXA|0|1|20250301||20^DTaP^CVX|0.5|mL|||||||||||||CP|D',
      ),
    );
    expect(acks.map((ack) => msaOf(ack).code)).toEqual(['AA', 'AA']);
    const doses = await feed.search(`Immunization?patient=Patient/${await patientOf(mrn)}`);
    const statusOf = Object.fromEntries(
      doses.map((found) => [found['vaccineCode'].coding[0].code, found['status']]),
    );
    expect(statusOf).toEqual({ '08': 'completed', '20': 'entered-in-error' });
  });

  it("keeps the dose's VFC eligibility, funding source and VIS (its OBX) on the Immunization", async () => {
    const acks = await feed.send(sample('VXU.hl7'), sample('IZ_1_1.1_Admin_Child_Max_Message.hl7'));
    expect(acks.map((ack) => msaOf(ack).code)).toEqual(['AA', 'AA']);
    // Each sample's own patient: other specs on this database file Synthea's doses of CVX 140.
    const wong = `patient=Patient/${await patientOfIn('90012', 'NIST-MPI-1')}`;
    const snow = `patient=Patient/${await patientOfIn('D26376273', 'NIST MPI')}`;
    const ndc = await feed.one(
      `Immunization?${wong}&vaccine-code=${encodeURIComponent('http://hl7.org/fhir/sid/ndc|49281-0215-88')}`,
    );
    expect(ndc).toMatchObject({
      programEligibility: [{ coding: [{ code: 'V01', display: 'Not VFC Eligible' }] }],
      fundingSource: { coding: [{ code: 'PHC70', display: 'Private' }] },
      education: [{ documentType: '253088698300028811170411', presentationDate: '2015-06-24' }],
    });
    const flu = await feed.one(
      `Immunization?${snow}&vaccine-code=${encodeURIComponent('http://hl7.org/fhir/sid/cvx|140')}`,
    );
    expect(flu).toMatchObject({
      programEligibility: [{ coding: [{ code: 'V05' }] }],
      education: [
        {
          documentType: 'Influenza, unspecified formulation',
          publicationDate: '2012-07-02',
          presentationDate: '2012-08-14',
        },
      ],
    });
    // The historical doses after it have no OBX, and none of the first dose's.
    const historical = await feed.search(
      `Immunization?${wong}&vaccine-code=${encodeURIComponent('http://hl7.org/fhir/sid/cvx|88')}`,
    );
    expect(historical).toHaveLength(2);
    for (const dose of historical) {
      expect(dose).toMatchObject({ primarySource: false });
      expect(dose['programEligibility']).toBeUndefined();
      expect(dose['doseQuantity']).toBeUndefined();
    }
  });

  it("files the VXU's next of kin (NK1) and insurance (IN1) as ADT's, once however often sent", async () => {
    const child = sample('IZ_1_1.1_Admin_Child_Max_Message.hl7');
    // The same message again (a resend), and VXU-V04-01's kin and insurance twice over.
    const acks = await feed.send(child, child, sample('VXU-V04-01.hl7'), sample('VXU-V04-02.hl7'));
    expect(acks.map((ack) => msaOf(ack).code)).toEqual(['AA', 'AA', 'AA', 'AA']);
    const snow = await patientOfIn('D26376273', 'NIST MPI');
    const mother = await feed.one(`RelatedPerson?patient=Patient/${snow}`);
    expect(mother).toMatchObject({
      name: [{ family: 'Lam', given: ['Morgan'] }],
      relationship: [{ coding: [expect.objectContaining({ code: 'MTH' })] }],
    });
    const everyman = (
      await feed.one(
        `Patient?identifier=${encodeURIComponent('urn:carevault:v2:assigning-authority:test1|PATID1234')}`,
      )
    )['id'];
    expect(await feed.search(`RelatedPerson?patient=Patient/${everyman}`)).toHaveLength(1);
    // The VXUs' policy (IN1-36): ADT samples another spec sends file this patient's others.
    expect(
      await feed.search(`Coverage?beneficiary=Patient/${everyman}&identifier=PN-145`),
    ).toHaveLength(1);
  });

  it('leaves the kin and insurance ADT filed as ADT set them, a VXU adding only new ones', async () => {
    const tag = randomUUID().slice(0, 8);
    const mrn = `K-${tag}`;
    // The registration system's mother and payer, then a clinic's VXU, later, with its own
    // older copy of them (the mother's former number, last year's group) and a new kin.
    const a08 = [
      `MSH|^~\\&|ADT|CLINIC|CV|CV|20250301090000||ADT^A08^ADT_A01|A-${tag}|P|2.5.1`,
      'EVN|A08|20250301090000',
      `PID|1||${mrn}^^^CLINIC&2.16.41&ISO^MR||Shot^Kid||20200101|F`,
      'NK1|1|Shot^Mara|MTH^Mother^HL70063||^PRN^PH^^^555^7770001',
      `IN1|1|PLAN-${tag}^Plan^99zzz|PAYER1|Payer One||||GRP-NEW`,
    ].join('\r');
    const acks = await feed.send(
      a08,
      vxu(
        `K1-${tag}`,
        mrn,
        'NK1|1|Shot^Mara|MTH^Mother^HL70063||^PRN^PH^^^555^7779999',
        'NK1|2|Shot^Gran|GRM^Grandmother^HL70063||^PRN^PH^^^555^7775555',
        `IN1|1|PLAN-${tag}^Plan^99zzz|PAYER1|Payer One||||GRP-OLD`,
        `ORC|RE||K-${tag}^EHR`,
        'RXA|0|1|20250301||08^HepB^CVX|0.5|mL',
      ),
    );
    expect(acks.map((ack) => msaOf(ack).code)).toEqual(['AA', 'AA']);
    const patient = await patientOf(mrn);
    const kin = await feed.search(`RelatedPerson?patient=Patient/${patient}`);
    const phones = Object.fromEntries(
      kin.map((one) => [one['name'][0].given[0], one['telecom']?.[0]?.value]),
    );
    expect(phones).toEqual({ Mara: expect.stringContaining('7770001'), Gran: expect.anything() });
    const [coverage] = await feed.search(`Coverage?beneficiary=Patient/${patient}`);
    expect(JSON.stringify(coverage)).toContain('GRP-NEW');
  });

  it('ties a dose to the place it was given (RXA-11), one Location for the doses given there', async () => {
    const tag = randomUUID().slice(0, 8);
    const acks = await feed.send(
      vxu(
        `L1-${tag}`,
        `L-${tag}`,
        `ORC|RE||L1-${tag}^EHR`,
        `RXA|0|1|20250301||08^HepB^CVX|0.5|mL||00^New^NIP001||^^^Clinic-${tag}`,
      ),
      vxu(
        `L2-${tag}`,
        `L-${tag}`,
        `ORC|RE||L2-${tag}^EHR`,
        `RXA|0|1|20250302||20^DTaP^CVX|0.5|mL||00^New^NIP001||^^^Clinic-${tag}`,
      ),
    );
    expect(acks.map((ack) => msaOf(ack).code)).toEqual(['AA', 'AA']);
    const clinic = await feed.one(`Location?name=${encodeURIComponent(`Clinic-${tag}`)}`);
    const doses = await feed.search(`Immunization?patient=Patient/${await patientOf(`L-${tag}`)}`);
    expect(doses.map((dose) => dose['location'])).toEqual([
      { reference: `Location/${clinic['id']}`, display: `Clinic-${tag}` },
      { reference: `Location/${clinic['id']}`, display: `Clinic-${tag}` },
    ]);
  });

  it("keeps a dose's other OBX (a reaction, a contraindication) as Observations part of it, once", async () => {
    const tag = randomUUID().slice(0, 8);
    const message = (control: string) =>
      vxu(
        `O${control}-${tag}`,
        `O-${tag}`,
        `ORC|RE||O-${tag}^EHR`,
        'RXA|0|1|20250301||03^MMR^CVX|0.5|mL||00^New^NIP001',
        'OBX|1|CE|64994-7^VFC eligibility^LN|1|V02^Medicaid^HL70064||||||F',
        'OBX|2|CE|31044-1^Reaction^LN|2|39579001^Anaphylaxis^SCT||||||F|||20250301',
        'OBX|3|CE|30945-0^Vaccination contraindication^LN|3|91930004^Allergy to eggs^SCT||||||F',
        'NTE|1||Seen in clinic',
      );
    const acks = await feed.send(message('1'), message('2'));
    expect(acks.map((ack) => msaOf(ack).code)).toEqual(['AA', 'AA']);
    const dose = await feed.one(
      `Immunization?identifier=${encodeURIComponent(`urn:carevault:v2:assigning-authority:EHR|O-${tag}`)}`,
    );
    const parts = await feed.search(`Observation?part-of=Immunization/${dose['id']}&_sort=code`);
    expect(parts.map((part) => part['code'].coding[0].code)).toEqual(['30945-0', '31044-1']);
    expect(parts[0]).toMatchObject({
      subject: { reference: `Patient/${await patientOf(`O-${tag}`)}` },
      valueCodeableConcept: { coding: [{ code: '91930004' }] },
      note: [{ text: 'Seen in clinic' }],
      meta: { versionId: '1' },
    });
  });

  it("keeps a dose's OBX of a text alone (no code) once, however often the dose is sent", async () => {
    const tag = randomUUID().slice(0, 8);
    const message = (control: string) =>
      vxu(
        `T${control}-${tag}`,
        `T-${tag}`,
        `ORC|RE||T-${tag}^EHR`,
        'RXA|0|1|20250301||03^MMR^CVX|0.5|mL||00^New^NIP001',
        'OBX|1|ST|^Reaction noted|1|Sore arm||||||F',
      );
    const acks = await feed.send(message('1'), message('2'));
    expect(acks.map((ack) => msaOf(ack).code)).toEqual(['AA', 'AA']);
    const dose = await feed.one(
      `Immunization?identifier=${encodeURIComponent(`urn:carevault:v2:assigning-authority:EHR|T-${tag}`)}`,
    );
    const parts = await feed.search(`Observation?part-of=Immunization/${dose['id']}`);
    expect(parts.map((part) => [part['code'].text, part['meta'].versionId])).toEqual([
      ['Reaction noted', '1'],
    ]);
  });

  it('keeps what is known of a deleted dose (RXA-21 D) and its observations, entered in error', async () => {
    const tag = randomUUID().slice(0, 8);
    const acks = await feed.send(
      vxu(
        `D1-${tag}`,
        `D-${tag}`,
        `ORC|RE||D-${tag}^EHR`,
        'RXA|0|1|20250301||03^MMR^CVX|0.5|mL^mL^UCUM||00^New^NIP001||||||LOT-7|20261231|MSD^Merck^MVX|||CP|A',
        'RXR|C28161^Intramuscular^NCIT|LA^Left Arm^HL70163',
        'OBX|1|CE|31044-1^Reaction^LN|1|39579001^Anaphylaxis^SCT||||||F',
      ),
      // The deletion names the dose; it need not repeat the rest.
      vxu(
        `D2-${tag}`,
        `D-${tag}`,
        `ORC|RE||D-${tag}^EHR`,
        'RXA|0|1|20250301||03^MMR^CVX|999|||||||||||||||D',
      ),
    );
    expect(acks.map((ack) => msaOf(ack).code)).toEqual(['AA', 'AA']);
    const dose = await feed.one(`Immunization?patient=Patient/${await patientOf(`D-${tag}`)}`);
    expect(dose).toMatchObject({
      status: 'entered-in-error',
      lotNumber: 'LOT-7',
      doseQuantity: { value: 0.5 },
      route: { coding: [{ code: 'C28161' }] },
      primarySource: true,
    });
    // The reaction to a dose never given is in error with it, off the patient's record.
    const [reaction] = await feed.search(`Observation?part-of=Immunization/${dose['id']}`);
    expect(reaction).toMatchObject({
      status: 'entered-in-error',
      code: { coding: [{ code: '31044-1' }] },
    });
  });

  it('leaves a dose and its reaction as they are when a deletion older than its update comes late', async () => {
    const tag = randomUUID().slice(0, 8);
    const at = (control: string, time: string, ...segments: string[]) =>
      vxu(control, `L-${tag}`, ...segments).replace('20250301100000', `20250301${time}+0000`);
    const rxa = (action: string) =>
      `RXA|0|1|20250301||03^MMR^CVX|0.5|mL||00^New^NIP001|||||||||||CP|${action}`;
    const acks = await feed.send(
      at(
        `L1-${tag}`,
        '100000',
        `ORC|RE||L-${tag}^EHR`,
        rxa('A'),
        'OBX|1|CE|31044-1^Reaction^LN|1|39579001^Anaphylaxis^SCT||||||F',
      ),
      // The dose confirmed at noon, without its reaction again; then, replayed late, a
      // deletion sent at eleven and since overtaken.
      at(`L2-${tag}`, '120000', `ORC|RE||L-${tag}^EHR`, rxa('U')),
      at(`L3-${tag}`, '110000', `ORC|RE||L-${tag}^EHR`, rxa('D')),
    );
    expect(acks.map((ack) => msaOf(ack).code)).toEqual(['AA', 'AA', 'AA']);
    const dose = await feed.one(`Immunization?patient=Patient/${await patientOf(`L-${tag}`)}`);
    expect(dose['status']).toBe('completed');
    const [reaction] = await feed.search(`Observation?part-of=Immunization/${dose['id']}`);
    // An anaphylaxis withdrawn from a dose still on record hides why the next dose is unsafe.
    expect(reaction!['status']).toBe('final');
  });
});
