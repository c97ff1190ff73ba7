import { decodeMessage } from '../message/hl7-header.js';
import { V2Message } from '../message/v2-message.js';
import { doseIdentifiers, fillerFirst } from './immunization.js';

const MSH = 'MSH|^~\\&|EHR|CLINIC|IIS|STATE|20250301||VXU^V04^VXU_V04|1|P|2.5.1';

function message(...segments: string[]): V2Message {
  const { text, header } = decodeMessage(Buffer.from([MSH, ...segments].join('\r')));
  return new V2Message(text, header.delimiters);
}

describe('a dose identifiers (ORC-2, ORC-3)', () => {
  it("leaves out CDC's filler number 9999 of a dose not given, and keeps the others", () => {
    const values = (orc: string) =>
      doseIdentifiers(message(orc).first('ORC'), 'urn:s').map((identifier) => identifier.value);
    expect(values('ORC|RE||9999^CDC')).toEqual([]);
    expect(values('ORC|RE|9999^EHR|9999^CDC')).toEqual(['9999']);
    expect(values('ORC|RE|P1^EHR|F1^EHR')).toEqual(['P1', 'F1']);
  });
});

describe('the identifier a dose is known by', () => {
  it("is the filler's number (ORC-3), else the placer's", () => {
    const known = (orc: string) =>
      fillerFirst(doseIdentifiers(message(orc).first('ORC'), 'urn:s'))?.value;
    expect(known('ORC|RE|P1^EHR|F1^EHR')).toBe('F1');
    expect(known('ORC|RE|P1^EHR')).toBe('P1');
    expect(known('ORC|RE|P1^EHR|9999^CDC')).toBe('P1');
    expect(known('ORC|RE')).toBeUndefined();
  });
});
