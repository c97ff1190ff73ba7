import { randomUUID } from 'node:crypto';
import { openHl7Feed, type Hl7Feed } from '../support/hl7-feed.js';
import { msaOf } from '../support/mllp.js';

const OID = '2.16.840.1.113883.19.46';

describe('HL7 ADT^A47 on a number a merge made old', () => {
  let feed: Hl7Feed;

  beforeAll(async () => {
    feed = await openHl7Feed();
  });

  afterAll(() => feed.close());

  it('keeps the corrected prior MRN old, so that a message naming it alone changes no details', async () => {
    const tag = randomUUID().slice(0, 8);
    const mrn = (who: string) => `${who}-${tag}^^^HOSP&${OID}&ISO^MR`;
    const pid = (who: string, family = 'Merged') =>
      `PID|1||${mrn(who)}||${family}^Pat||19700101|F|||1 Main St^^Town`;
    const message = (control: string, event: string, ...rest: string[]) =>
      [
        `MSH|^~\\&|ADT|HOSP|CV|CV|20261207100000+0000||ADT^${event}|${control}-${tag}|P|2.5.1`,
        `EVN|${event}|20261207100000+0000`,
        ...rest,
      ].join('\r');
    const acks = await feed.send(
      message('C1', 'A28', pid('P', 'Prior')),
      message('C2', 'A28', pid('S')),
      message('C3', 'A40', pid('S'), `MRG|${mrn('P')}`),
      // The prior patient's MRN was mistyped: P should have been Q.
      message('C4', 'A47', pid('Q', 'Prior'), `MRG|${mrn('P')}`),
      // A clinic not told of the merge, naming the patient by the prior record's number.
      message('C5', 'A08', pid('Q', 'Prior'), 'PV1|1|O'),
    );
    const survivor = await feed.one(
      `Patient?identifier=${encodeURIComponent(`urn:oid:${OID}|S-${tag}`)}`,
    );
    const identifiers = (survivor['identifier'] as { value: string; use?: string }[]).map(
      (identifier) => [identifier.value, identifier.use ?? 'current'],
    );
    // Until 2026-12-07 the correction of the old number was current: the survivor held two
    // current MRNs of one authority, and the clinic's A08 renamed it to the prior record's name.
    expect({
      codes: acks.map((ack) => msaOf(ack).code),
      identifiers,
      family: (survivor['name'] as { family: string }[])[0]!.family,
    }).toEqual({
      codes: ['AA', 'AA', 'AA', 'AA', 'AA'],
      identifiers: [
        [`S-${tag}`, 'current'],
        [`Q-${tag}`, 'old'],
      ],
      family: 'Merged',
    });
  });
});
