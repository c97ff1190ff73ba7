import { Hl7ProcessingError } from '../message/hl7-header.js';
import { exactNumberOf } from './numeric.js';

describe('exactNumberOf', () => {
  it('reads NM as written: sign, point, trailing zeros, blanks around it', () => {
    expect(exactNumberOf('30', 'PR1-7')).toBe(30);
    expect(exactNumberOf(' -2.50 ', 'FT1-10')).toBe(-2.5);
    expect(exactNumberOf('+.5', 'RXA-6')).toBe(0.5);
    expect(exactNumberOf('7.', 'RXA-6')).toBe(7);
    expect(exactNumberOf('9007199254740991', 'PV2-11')).toBe(9007199254740991);
    // More than 15 digits, and what a double prints back as it is.
    expect(exactNumberOf('0.30000000000000004', 'OBX-5')).toBe(0.30000000000000004);
  });

  it('gives nothing for what is empty, "" or no NM', () => {
    for (const text of [
      undefined,
      null,
      '',
      '  ',
      'about 30',
      '1e3',
      '0x1E',
      'Infinity',
      '1.2.3',
    ]) {
      expect([text, exactNumberOf(text, 'SCH-9')]).toEqual([text, undefined]);
    }
  });

  it('refuses (ERR 102) a number a double cannot hold, naming the field and not the value', () => {
    for (const text of ['9007199254740993', '30.0000000000000001', '0.1000000000000000055511']) {
      let thrown: unknown;
      try {
        exactNumberOf(text, 'FT1-11');
      } catch (error) {
        thrown = error;
      }
      expect(thrown).toBeInstanceOf(Hl7ProcessingError);
      expect(thrown).toMatchObject({ code: '102' });
      expect((thrown as Error).message).toContain('FT1-11');
      expect((thrown as Error).message).not.toContain(text);
    }
  });
});
