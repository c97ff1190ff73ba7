import { randomUUID } from 'node:crypto';
import { openHl7Feed, type Hl7Feed } from '../support/hl7-feed.js';
import { msaOf } from '../support/mllp.js';

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

});
