import { holdsExactly } from './exact-decimal.js';

describe('holdsExactly', () => {
  it('holds what a double prints back, trailing zeros and exponents included', () => {
    for (const text of [
      '0',
      '-0',
      '-0.0',
      '1.10',
      '5.4',
      '+5.4',
      '.5',
      '5.',
      '123456789012345',
      '9007199254740991',
      '-9007199254740991',
      '0.1',
      '1.000000000000000000000',
      '0.30000000000000004',
      '1e300',
      '1.7976931348623157e308',
      '5e-324',
      '1.2345678901234568E+29',
      '100000000000000000000.0',
      '0e99999',
    ]) {
      expect([text, holdsExactly(text)]).toEqual([text, true]);
    }
  });

  it('does not hold more digits than a double keeps, or what overflows or underflows', () => {
    for (const text of [
      '9007199254740992',
      '9007199254740993',
      '-9007199254740993',
      '123456789012345678901234567890',
      '12345678901234567890.0',
      '0.1000000000000000055511151231257827',
      '3.14159265358979323846',
      '1e400',
      '-1e400',
      '1e-400',
      '1.23456789012345e-315',
    ]) {
      expect([text, holdsExactly(text)]).toEqual([text, false]);
    }
  });
});
