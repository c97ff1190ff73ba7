import { randomUUID } from 'node:crypto';
import { openHl7Feed, type Hl7Feed } from '../support/hl7-feed.js';
import { msaOf } from '../support/mllp.js';

/**
 * What the v2-to-FHIR IG's maps say and a clinical informaticist checked once filed: a culture
 * and its susceptibility panel under one order number, order status changes, what a status-only
 * order message leaves alone.
 */
describe('HL7 v2 results and orders as the v2-to-FHIR IG maps them', () => {
  let feed: Hl7Feed;

  beforeAll(async () => {
    feed = await openHl7Feed();
  });

  afterAll(() => feed.close());

  it('keeps a culture and its susceptibility panel of one order number as two reports', async () => {
    const tag = randomUUID().slice(0, 8);
    const system = 'urn:carevault:v2:assigning-authority:LAB';
    const culture = (status: string, control: string, organism = 'S. aureus') =>
      [
        `MSH|^~\\&|LAB|LABF|CV|CV|20250301100000||ORU^R01|${control}-${tag}|P|2.5.1`,
        `PID|1||M-${tag}^^^HOSP&2.16.36&ISO^MR||Micro^Mia`,
        `ORC|RE|P-${tag}^EHR|F-${tag}^LAB`,
        `OBR|1|P-${tag}^EHR|F-${tag}^LAB|625-4^Bacteria identified in Stool by Culture^LN|||20250301090000${'|'.repeat(18)}${status}`,
        `OBX|1|CWE|600-7^Bacteria identified^LN|1|3092008^${organism}^SCT||||||${status}`,
        `OBX|2|ST|19146-0^Reference lab test results^LN|1|Heavy growth||||||${status}`,
        `OBX|3|ST|664-3^Gram stain^LN|1|Gram positive cocci||||||${status}`,
        `OBX|4|NM|564-5^Colony count^LN|1|100000|{CFU}/mL|||||${status}`,
        `OBX|5|ST|8251-1^Service comment^LN|1|Clusters||||||${status}`,
        `OBX|6|CWE|600-7^Bacteria identified^LN|2|Negative for Salmonella||||||${status}`,
      ].join('\r');
    const susceptibility = (status: string, control: string, mic: string) =>
      [
        `MSH|^~\\&|LAB|LABF|CV|CV|20250301110000||ORU^R01|${control}-${tag}|P|2.5.1`,
        `PID|1||M-${tag}^^^HOSP&2.16.36&ISO^MR||Micro^Mia`,
        `ORC|RE|P-${tag}^EHR|F-${tag}^LAB`,
        // OBR-26 names the parent result (the organism), OBR-29 the parent order.
        `OBR|2|P-${tag}^EHR|F-${tag}^LAB|29576-6^Bacterial susceptibility panel^LN|||20250301090000${'|'.repeat(18)}${status}|600-7&Bacteria identified&LN^1^S. aureus|||P-${tag}&EHR^F-${tag}&LAB`,
        `OBX|1|SN|18864-9^Ampicillin [Susceptibility]^LN|1|<=^${mic}|ug/mL|||||${status}`,
        `OBX|2|SN|18993-6^Tetracycline [Susceptibility]^LN|1|<=^1|ug/mL|||||${status}`,
        // The organism again, under the panel: the culture's result keeps its own value.
        `OBX|3|CWE|600-7^Bacteria identified^LN|1|3092008^Staphylococcus aureus^SCT||||||${status}`,
      ].join('\r');
    const both = [culture('P', 'C1'), susceptibility('P', 'S1', '0.25').split('\r').slice(2)]
      .flat()
      .join('\r');
    expect(msaOf((await feed.send(both))[0]!).code).toBe('AA');
    const reports = () =>
      feed.search(
        `DiagnosticReport?identifier=${encodeURIComponent(`${system}|F-${tag}`)}&_sort=code`,
      );
    const byCode = async () =>
      Object.fromEntries(
        (await reports()).map((report) => [report['code'].coding[0].code, report]),
      );
    let filed = await byCode();
    expect(Object.keys(filed).sort()).toEqual(['29576-6', '625-4']);
    expect(filed['625-4']!['result']).toHaveLength(6);
    expect(filed['29576-6']!['result']).toHaveLength(3);
    // The filler's number, typed FILL (v2-0203) as the IG's OBR map does.
    expect(filed['625-4']!['identifier']).toEqual([
      {
        system,
        value: `F-${tag}`,
        type: {
          coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'FILL' }],
        },
      },
    ]);
    // The organism under each report: the panel's, of the same code and sub-id, is its own.
    const organism = async (key: string) => {
      const found = await feed.search(
        `Observation?identifier=${encodeURIComponent(`${system}|F-${tag}/${key}`)}`,
      );
      expect(found).toHaveLength(1);
      return found[0]!['valueCodeableConcept'].coding[0].display;
    };
    expect(await organism('600-7/1')).toBe('S. aureus');
    expect(await organism('29576-6/600-7/1')).toBe('Staphylococcus aureus');

    // A correction of each updates its own report, and a resend adds none.
    const acks = await feed.send(
      susceptibility('C', 'S2', '0.5'),
      culture('F', 'C2', 'Staphylococcus aureus'),
      susceptibility('C', 'S3', '0.5'),
    );
    expect(acks.map((ack) => msaOf(ack).code)).toEqual(['AA', 'AA', 'AA']);
    filed = await byCode();
    expect(Object.keys(filed).sort()).toEqual(['29576-6', '625-4']);
    expect(filed['625-4']).toMatchObject({ status: 'final' });
    expect(filed['625-4']!['result']).toHaveLength(6);
    expect(filed['29576-6']).toMatchObject({ status: 'corrected' });
    expect(filed['29576-6']!['result']).toHaveLength(3);
    expect(await organism('600-7/1')).toBe('Staphylococcus aureus');
    const ampicillin = await feed.search(
      `Observation?identifier=${encodeURIComponent(`${system}|F-${tag}/29576-6/18864-9/1`)}`,
    );
    expect(ampicillin).toHaveLength(1);
    expect(ampicillin[0]).toMatchObject({
      status: 'corrected',
      valueQuantity: { value: 0.5, comparator: '<=' },
    });
    expect(
      await feed.search(`Observation?subject=${filed['625-4']!['subject'].reference}&_count=50`),
    ).toHaveLength(9);

    // A child with a number of its own (a reflex test) keeps the identifiers its results had
    // before 2026-12-06, which corrections of results stored then find them by.
    const reflex = susceptibility('F', 'R1', '0.5')
      .replace(`|P-${tag}^EHR|F-${tag}^LAB|29576-6`, `|P-${tag}^EHR|R-${tag}^LAB|29576-6`)
      .replace(`ORC|RE|P-${tag}^EHR|F-${tag}^LAB`, `ORC|RE|P-${tag}^EHR|R-${tag}^LAB`);
    expect(msaOf((await feed.send(reflex))[0]!).code).toBe('AA');
    const own = `${system}|R-${tag}/18864-9/1`;
    expect(await feed.search(`Observation?identifier=${encodeURIComponent(own)}`)).toHaveLength(1);
  });

  it('refuses two reports of one number and code in a message (AE 205), filing neither', async () => {
    const tag = randomUUID().slice(0, 8);
    const [ack] = await feed.send(
      [
        `MSH|^~\\&|LAB|LABF|CV|CV|20250301100000||ORU^R01|D-${tag}|P|2.5.1`,
        `PID|1||D-${tag}^^^HOSP&2.16.37&ISO^MR||Double^Dee`,
        `OBR|1||FD-${tag}^LAB|2345-7^Glucose^LN|||20250301090000`,
        `OBX|1|NM|2345-7^Glucose^LN||99|mg/dL|||||F`,
        `OBR|2||FD-${tag}^LAB|2345-7^Glucose^LN|||20250301093000`,
        `OBX|1|NM|2345-7^Glucose^LN||101|mg/dL|||||F`,
      ].join('\r'),
    );
    expect(msaOf(ack!).code).toBe('AE');
    expect(ack).toMatch(/the same number \(OBR-3, else OBR-2\) and code \(OBR-4\)/);
    expect(await feed.search(`DiagnosticReport?identifier=FD-${tag}`)).toHaveLength(0);
  });
  const prescriptions = (tag: string, ...orcs: string[]) =>
    orcs.map((orc, i) =>
      [
        `MSH|^~\\&|CPOE|HOSP|CV|CV|2025030108${i}000||RDE^O11|RX${i}-${tag}|P|2.5`,
        `PID|1||RX-${tag}^^^HOSP&2.16.38&ISO^MR||Script^Sue`,
        orc,
        'RXE||197361^Amlodipine 5 mg tab^RXNORM|5||mg^mg^UCUM',
      ].join('\r'),
    );

  async function prescription(tag: string, number: string): Promise<Record<string, any>> {
    const found = await feed.search(
      `MedicationRequest?identifier=${encodeURIComponent(`urn:carevault:v2:assigning-authority:CPOE|${number}-${tag}`)}`,
    );
    expect(found).toHaveLength(1);
    return found[0]!;
  }

  it('stops a discontinued prescription and completes a completed one (ORC-5, else ORC-1)', async () => {
    const tag = randomUUID().slice(0, 8);
    const acks = await feed.send(
      ...prescriptions(
        tag,
        `ORC|NW|R300-${tag}^CPOE`,
        `ORC|OD|R300-${tag}^CPOE|F300^PHARM`,
        `ORC|NW|R301-${tag}^CPOE`,
        `ORC|SC|R301-${tag}^CPOE|F301^PHARM||CM`,
        `ORC|NW|R302-${tag}^CPOE`,
        `ORC|DR|R302-${tag}^CPOE|F302^PHARM||DC`,
      ),
    );
    expect(acks.map((ack) => msaOf(ack).code)).toEqual(['AA', 'AA', 'AA', 'AA', 'AA', 'AA']);
    expect((await prescription(tag, 'R300'))['status']).toBe('stopped');
    expect((await prescription(tag, 'R301'))['status']).toBe('completed');
    expect((await prescription(tag, 'R302'))['status']).toBe('stopped');
  });
  it('keeps what a status-only order message does not carry: authored time, requester, route', async () => {
    const tag = randomUUID().slice(0, 8);
    const rde = (at: string, orc: string, ...rest: string[]) =>
      [
        `MSH|^~\\&|CPOE|HOSP|CV|CV|${at}||RDE^O11|K${at}-${tag}|P|2.5`,
        `PID|1||K-${tag}^^^HOSP&2.16.39&ISO^MR||Keep^Kim`,
        orc,
        'RXE||197361^Amlodipine 5 mg tab^RXNORM|5||mg^mg^UCUM',
        ...rest,
      ].join('\r');
    const orm = (at: string, orc: string) =>
      [
        `MSH|^~\\&|CPOE|HOSP|CV|CV|${at}||ORM^O01|O${at}-${tag}|P|2.5`,
        `PID|1||K-${tag}^^^HOSP&2.16.39&ISO^MR||Keep^Kim`,
        orc,
        'OBR|1|||24725-4^CT Head^LN',
      ].join('\r');
    const at8 = '|||||||202503010800+0000|||1234^Attend^Alice';
    const acks = await feed.send(
      rde('202503010800', `ORC|NW|R400-${tag}^CPOE${at8}`, 'RXR|PO^Oral^HL70162'),
      rde('202503010900', `ORC|OD|R400-${tag}^CPOE|F400^PHARM|||||202503010900+0000`),
      orm('202503010800', `ORC|NW|O400-${tag}^CPOE${at8}`),
      orm('202503010900', `ORC|OD|O400-${tag}^CPOE||||||202503010900+0000`),
      orm('202503010800', `ORC|NW|O401-${tag}^CPOE|||HD`),
      // A status change that gives no status (ORC-5): the order stays as it was.
      orm('202503010900', `ORC|SC|O401-${tag}^CPOE`),
    );
    expect(acks.map((ack) => msaOf(ack).code)).toEqual(['AA', 'AA', 'AA', 'AA', 'AA', 'AA']);
    const stopped = await prescription(tag, 'R400');
    expect(stopped).toMatchObject({
      status: 'stopped',
      authoredOn: '2025-03-01T08:00:00+00:00',
      requester: { type: 'Practitioner', display: 'Alice Attend' },
      dosageInstruction: [{ route: { coding: [{ code: 'PO' }] } }],
    });
    // The pharmacy's number the OD sent is added to the placer's.
    expect(stopped['identifier'].map((id: { value: string }) => id.value)).toEqual([
      `R400-${tag}`,
      'F400',
    ]);
    const orders = async (number: string) => {
      const found = await feed.search(
        `ServiceRequest?identifier=${encodeURIComponent(`urn:carevault:v2:assigning-authority:CPOE|${number}-${tag}`)}`,
      );
      expect(found).toHaveLength(1);
      return found[0]!;
    };
    expect(await orders('O400')).toMatchObject({
      status: 'revoked',
      authoredOn: '2025-03-01T08:00:00+00:00',
      requester: { display: 'Alice Attend' },
    });
    expect((await orders('O401'))['status']).toBe('on-hold');
  });
});
