import type { Identifier } from '../mapping/datatypes.js';
import { corrected } from './patient-merges.js';

const V2_0203 = 'http://terminology.hl7.org/CodeSystem/v2-0203';
const mr = (value: string, use?: 'old'): Identifier => ({
  system: 'urn:oid:2.16.12',
  value,
  type: { coding: [{ system: V2_0203, code: 'MR' }] },
  ...(use ? { use } : {}),
});
const ssn: Identifier = {
  system: 'urn:oid:2.16.13',
  value: '123',
  type: { coding: [{ system: V2_0203, code: 'SS' }] },
};

describe('corrected (ADT^A47)', () => {
  it('replaces a wrong current number with the right one, current', () => {
    expect(corrected([mr('WRONG'), ssn], [mr('WRONG')], [mr('RIGHT')])).toEqual([ssn, mr('RIGHT')]);
  });

  it('keeps the correction of a number a merge made old old', () => {
    expect(corrected([mr('S'), mr('P', 'old')], [mr('P')], [mr('Q')])).toEqual([
      mr('S'),
      mr('Q', 'old'),
    ]);
  });

  it('makes old only the new numbers of the authority and type of the old one', () => {
    expect(corrected([mr('S'), mr('P', 'old')], [mr('P')], [mr('Q'), ssn, mr('S')])).toEqual([
      mr('S'),
      mr('Q', 'old'),
      ssn,
    ]);
  });

  it('keeps the correction current when a wrong number of that authority was current', () => {
    expect(corrected([mr('A'), mr('P', 'old')], [mr('A'), mr('P')], [mr('Q')])).toEqual([mr('Q')]);
  });
});
