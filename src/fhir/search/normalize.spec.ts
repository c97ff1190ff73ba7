import { stringTerms } from './blind-terms.js';
import { legacyNormalizeString, normalizeString, searchForms } from './normalize.js';

describe('normalizeString: a name written one way is found typed another', () => {
  it.each([
    ['NFD input (e + U+0301) and precomposed é', 'Ame\u0301lie', 'Amélie'],
    ['German ß and SS', 'Straße', 'STRASSE'],
    ['Turkish dotless ı', 'Işık', 'ISIK'],
    ['Turkish dotted İ', 'İlker', 'ilker'],
    ['Vietnamese stacked diacritics', 'Nguyễn Thị Ánh', 'nguyen thi anh'],
    ['Vietnamese Đ', 'Đặng', 'Dang'],
    ['Danish ø, Polish ł', 'Søren Łukasz', 'soren lukasz'],
    ['a zero-width space pasted inside', 'Mül\u200bler', 'Muller'],
    ['a soft hyphen', 'Jo\u00adhannes', 'johannes'],
    ['a right-to-left mark before an Arabic name', '\u200fمحمد', 'محمد'],
    ['the Arabic tatweel', 'محـمد', 'محمد'],
    ['Hebrew points', 'שָׁלוֹם', 'שלום'],
    ['a typographic apostrophe', 'O’Brien', "o'brien"],
    ['a no-break space and a hyphen', 'Smith\u00a0Jones', 'smith-jones'],
    ['an ideographic space', '王\u3000小明', '王 小明'],
    ['fullwidth letters', 'Ｍüller', 'muller'],
  ])('%s', (_case, written, typed) => {
    expect(normalizeString(written)).toBe(normalizeString(typed));
  });

  it('indexes the prefixes a Greek name is searched by, final sigma or not', () => {
    // ΟΔΥΣ lower-cases to οδυς (final sigma at the end of the word), a prefix of Οδυσσευς.
    expect(stringTerms('Οδυσσευς')).toContain(`p:${normalizeString('ΟΔΥΣ')}`);
  });

  it('searches the form rows indexed before 2026-12-07 were written under too', () => {
    expect(legacyNormalizeString('Straße')).toBe('straße');
    expect(searchForms('Straße', true)).toEqual(['strasse', 'straße']);
    expect(searchForms('Müller', true)).toEqual(['muller']);
  });

  it('searches the current form alone once every row is indexed by version 3', () => {
    expect(searchForms('Straße', false)).toEqual(['strasse']);
  });
});
