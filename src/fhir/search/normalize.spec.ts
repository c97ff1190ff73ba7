import { stringTerms } from './blind-terms.js';
import {
  legacyNormalizeString,
  normalizeString,
  searchForms,
  unmarkedNormalizeString,
} from './normalize.js';

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
    ['Greek tonos', 'Ελληνικά', 'ΕΛΛΗΝΙΚΑ'],
    ['Spanish ñ', 'Ñúñez', 'nunez'],
    ['Cyrillic ё', 'Алёна', 'алена'],
    ['Arabic harakat (optional vowels)', 'مُحَمَّد', 'محمد'],
    ['Arabic hamza on alef, often typed without', 'أحمد', 'احمد'],
    ['Hebrew niqqud and a Judeo-Spanish varika', 'יִצְחָק', 'יצחק'],
    ['an ideographic variation selector', '葛\u{e0100}城', '葛城'],
    ['halfwidth katakana with a voiced mark', 'ｶﾞﾄｳ', 'ガトウ'],
    ['Hangul typed as jamo (NFD)', '\u1100\u1175\u11b7', '김'],
    ['a Bengali two-part vowel sign typed in its parts', '\u0995\u09c7\u09be', '\u0995\u09cb'],
  ])('%s', (_case, written, typed) => {
    expect(normalizeString(written)).toBe(normalizeString(typed));
  });

  it.each([
    ['Devanagari: Ram and Rama', 'राम', 'रमा'],
    ['Devanagari: Krishna and the letters without its vowel sign and virama', 'कृष्ण', 'कषण'],
    ['Bengali: Ram and Rama', 'রাম', 'রমা'],
    ['Tamil: Ram and Rama', 'ராம்', 'ரமா'],
    ['Telugu: Sita and Sata', 'సీత', 'సత'],
    ['Japanese: Gatō and Katō (dakuten)', 'ガトウ', 'カトウ'],
    ['Japanese: Satō and Sadō in hiragana', 'さとう', 'さどう'],
    ['Japanese: Pan and Han (handakuten)', 'パン', 'ハン'],
    ['Thai: Somchai and the letters without its vowel sign', 'สมชัย', 'สมชย'],
    ['Thai: Suda and the letters without its vowel sign', 'สุดา', 'สดา'],
    ['Thai: a tone mark', 'ป้า', 'ปา'],
  ])('keeps the marks that spell a name apart from another (%s)', (_case, one, other) => {
    expect(normalizeString(one)).not.toBe(normalizeString(other));
  });

  it('recomposes Hangul, so a name counts syllables, not the letters NFKD splits them into', () => {
    expect(normalizeString('김')).toBe('김');
    expect(stringTerms('김철수')).toEqual(['e:김철수', 'p:김철수']);
    expect(normalizeString('ガトウ')).toBe('ガトウ');
    expect([...normalizeString('कृष्ण')]).toHaveLength(5);
  });

  it('is its own normal form, as the index and the search each apply it once', () => {
    for (const name of ['कृष्ण', 'ｶﾞﾄｳ', '김철수', 'Nguyễn', 'שָׁלוֹם', 'Straße', 'สมชัย']) {
      expect(normalizeString(normalizeString(name))).toBe(normalizeString(name));
    }
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

  it('searches the form rows indexed at versions 3 to 5 were written under, every mark dropped', () => {
    expect(unmarkedNormalizeString('राम')).toBe('रम');
    expect(unmarkedNormalizeString('김')).toBe('\u1100\u1175\u11b7');
    expect(searchForms('राम', false, true)).toEqual(['राम', 'रम']);
    expect(searchForms('김', false, true)).toEqual(['김', '\u1100\u1175\u11b7']);
    expect(searchForms('Straße', true, true)).toEqual(['strasse', 'straße']);
    expect(searchForms('Müller', false, true)).toEqual(['muller']);
  });

  it('searches the current form alone once every row is indexed by version 6', () => {
    expect(searchForms('राम', false, false)).toEqual(['राम']);
    expect(searchForms('ガトウ', false, false)).toEqual(['ガトウ']);
  });
});
