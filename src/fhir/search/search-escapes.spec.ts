import { splitUnescaped, tokenParts, unescapeSearch } from './search-escapes.js';

describe('FHIR search escapes', () => {
  it('reads a backslash and the character after it as that character', () => {
    expect(unescapeSearch('a\\|b\\$c\\,d\\\\e')).toBe('a|b$c,d\\e');
    // A backslash before anything else is itself.
    expect(unescapeSearch('C:\\temp')).toBe('C:\\temp');
  });

  it('splits a token at its first unescaped bar', () => {
    expect(tokenParts('urn:x|P\\|Q')).toEqual({ system: 'urn:x', code: 'P|Q' });
    expect(tokenParts('|code')).toEqual({ system: '', code: 'code' });
    expect(tokenParts('urn:x|')).toEqual({ system: 'urn:x', code: '' });
    expect(tokenParts('a\\|b')).toEqual({ system: null, code: 'a|b' });
    // An escaped backslash does not escape the bar after it.
    expect(tokenParts('a\\\\|b')).toEqual({ system: 'a\\', code: 'b' });
  });

  it('splits a quantity at its unescaped bars', () => {
    expect(splitUnescaped('5.4|http://unitsofmeasure.org|mmol/L', '|')).toEqual([
      '5.4',
      'http://unitsofmeasure.org',
      'mmol/L',
    ]);
    expect(splitUnescaped('5|urn:u|a\\|b', '|')).toEqual(['5', 'urn:u', 'a|b']);
  });
});
