import { dateCoverTerms, dateTerms, startsWithTerm, stringTerms } from './blind-terms.js';

/** Whether a stored date is found by a range search, as the index decides it. */
function found(stored: string, from: string | null, to: string | null): boolean {
  const cover = new Set(
    dateCoverTerms(
      from ? new Date(`${from}T00:00:00Z`) : null,
      to ? new Date(`${to}T00:00:00Z`) : null,
    ),
  );
  return dateTerms(stored).some((term) => cover.has(term));
}

describe('blind-index terms', () => {
  it('indexes a name part exactly and by prefixes of 3 to 20 characters, without case or accents', () => {
    expect(stringTerms('  Ñúñez ')).toEqual(['e:nunez', 'p:nun', 'p:nune', 'p:nunez']);
    expect(
      stringTerms('Wolfeschlegelsteinhausenbergerdorff').filter((t) => t.startsWith('p:')),
    ).toHaveLength(18);
  });

  it('indexes names of the Basic Multilingual Plane under the terms it always did', () => {
    // What rows written before index version 5 hold for these; a change here is a reindex.
    expect(stringTerms('Wolfeschlegelsteinhausenbergerdorff').slice(-2)).toEqual([
      'p:wolfeschlegelsteinh',
      'p:wolfeschlegelsteinha',
    ]);
    expect(stringTerms('Đặng Thị')).toEqual([
      'e:dang thi',
      'p:dan',
      'p:dang',
      'p:dang ',
      'p:dang t',
      'p:dang th',
      'p:dang thi',
    ]);
    expect(stringTerms('吉野太郎')).toEqual(['e:吉野太郎', 'p:吉野太', 'p:吉野太郎']);
    expect(stringTerms('محمد')).toEqual(['e:محمد', 'p:محم', 'p:محمد']);
    // Until index version 6, Hangul stayed decomposed into its jamo: 김 was three characters
    // (p:\u1100\u1175\u11b7); it is recomposed now, one syllable, so a whole part.
    expect(stringTerms('김')).toEqual(['e:김']);
  });

  it('counts the characters of a name outside the Basic Multilingual Plane, not UTF-16 units', () => {
    // 𠮷 (U+20BB7, CJK Extension B) is one character, two UTF-16 code units.
    expect(stringTerms('𠮷野家')).toEqual(['e:𠮷野家', 'p:𠮷野家']);
    expect(startsWithTerm('𠮷野')).toEqual({ term: 'e:𠮷野', wholePart: true });
    const tangut = '𗼇𗅋𗁅𘝞𗂧𗤶𗈪𗡞𘃡𗹦𗾞𗂸𗏁𗹏𗣼𗟲𗅲𗡶𗼃𗥤𗤁𗢳';
    const prefixes = stringTerms(tangut).filter((term) => term.startsWith('p:'));
    expect(prefixes).toHaveLength(18);
    expect(prefixes.at(-1)).toBe(`p:${[...tangut].slice(0, 20).join('')}`);
    expect(startsWithTerm(tangut).term).toBe(`p:${[...tangut].slice(0, 20).join('')}`);
  });

  it('never cuts a character in two, so different names share no prefix hash they should not', () => {
    // Hashed as UTF-8, half a surrogate pair is U+FFFD whichever character it was half of.
    const utf8 = (terms: string[]): string[] =>
      terms.map((term) => Buffer.from(term, 'utf8').toString('hex'));
    const yoshino = utf8(stringTerms('ab𠮷野'));
    const other = utf8(stringTerms('ab𡈽野'));
    expect(yoshino.filter((term) => other.includes(term))).toEqual([]);
    expect(stringTerms('ab𠮷野').filter((term) => /\p{Cs}/u.test(term))).toEqual([]);
    const long = `${'x'.repeat(19)}𠮷野`;
    expect(utf8([startsWithTerm(long).term])).not.toEqual(
      utf8([startsWithTerm(`${'x'.repeat(19)}𡈽野`).term]),
    );
  });

  it('keeps no accent, so no prefix ends between a letter and its accent', () => {
    for (const name of ['Nguye\u0302\u0303n', 'שָׁלוֹם', 'مُحَمَّد', 'Zoë']) {
      expect([name, stringTerms(name).filter((term) => /\p{M}/u.test(term))]).toEqual([name, []]);
    }
  });

  it('cuts a name whose marks spell it where its typist could stop: after each code point', () => {
    // कृष्ण is क, vowel sign ृ, ष, virama ्, ण, typed in that order.
    expect(stringTerms('कृष्ण')).toEqual(['e:कृष्ण', 'p:कृष', 'p:कृष्', 'p:कृष्ण']);
    expect(stringTerms('สมชัย')).toEqual(['e:สมชัย', 'p:สมช', 'p:สมชั', 'p:สมชัย']);
  });

  it('finds dates by range at every stored precision (overlap semantics)', () => {
    // ge 1980-04-12 (from that day on)
    expect(found('1980-04-12', '1980-04-12', null)).toBe(true);
    expect(found('1980-04-11', '1980-04-12', null)).toBe(false);
    expect(found('1980-04', '1980-04-12', null)).toBe(true); // the month overlaps
    expect(found('1980-03', '1980-04-12', null)).toBe(false);
    expect(found('1980', '1980-04-12', null)).toBe(true); // the year overlaps
    expect(found('1979', '1980-04-12', null)).toBe(false);
    expect(found('2001-07-30', '1980-04-12', null)).toBe(true);
    // lt 1980 (before 1980-01-01)
    expect(found('1979-12-31', null, '1980-01-01')).toBe(true);
    expect(found('1980-01-01', null, '1980-01-01')).toBe(false);
    expect(found('1850', null, '1980-01-01')).toBe(true);
    // a closed interval inside one month
    expect(found('1980-04-15', '1980-04-12', '1980-04-20')).toBe(true);
    expect(found('1980-04-20', '1980-04-12', '1980-04-20')).toBe(false);
  });

  it('finds dates before 1800 and after 2099 by range, by whole centuries where it can', () => {
    expect(found('1799-12-31', null, '1850-01-01')).toBe(true);
    expect(found('1753-01-01', null, '1850-01-01')).toBe(true);
    expect(found('0001-01-01', null, '1850-01-01')).toBe(true);
    expect(found('0050-06', null, '0050-06-15')).toBe(true); // not 1950
    expect(found('0050-06', null, '0050-06-01')).toBe(false);
    expect(found('1760', null, '1750-01-01')).toBe(false);
    expect(found('1760', '1700-01-01', '1760-03-01')).toBe(true);
    expect(found('1799-12-31', '1799-01-01', null)).toBe(true);
    expect(found('2150', '2100-01-01', null)).toBe(true);
    expect(found('2150', null, '2150-01-01')).toBe(false);
    expect(found('9999-12-31', '9999-12-31', null)).toBe(true);
    // One hash per century outside 1800 to 2099, not per year.
    expect(dateCoverTerms(null, new Date('1800-01-01T00:00:00Z'))).toHaveLength(18);
    expect(dateCoverTerms(new Date('2100-01-01T00:00:00Z'), null)).toHaveLength(79);
  });

  it('finds only the dates a range contains with within (sa, eb)', () => {
    const contained = (stored: string, from: string | null, to: string | null): boolean => {
      const cover = new Set(
        dateCoverTerms(
          from ? new Date(`${from}T00:00:00Z`) : null,
          to ? new Date(`${to}T00:00:00Z`) : null,
          true,
        ),
      );
      return dateTerms(stored).some((term) => cover.has(term));
    };
    // sa 1980-04-12: from the 13th on
    expect(contained('1980-04-13', '1980-04-13', null)).toBe(true);
    expect(contained('1980-04', '1980-04-13', null)).toBe(false);
    expect(contained('1980', '1980-04-13', null)).toBe(false);
    expect(contained('1980-05', '1980-04-13', null)).toBe(true);
    expect(contained('1981', '1980-04-13', null)).toBe(true);
    expect(contained('2150', '1980-04-13', null)).toBe(true);
    // eb 1980-03: before March
    expect(contained('1980-02-29', null, '1980-03-01')).toBe(true);
    expect(contained('1980', null, '1980-03-01')).toBe(false);
    expect(contained('1979', null, '1980-03-01')).toBe(true);
    expect(contained('1753-01', null, '1980-03-01')).toBe(true);
  });

  it('finds the day a bound with a time falls in (the date is the whole day)', () => {
    const cover = (from: string | null, to: string | null): Set<string> =>
      new Set(dateCoverTerms(from ? new Date(from) : null, to ? new Date(to) : null));
    const byDay = (stored: string, terms: Set<string>): boolean =>
      dateTerms(stored).some((term) => terms.has(term));
    // ge / le 1980-04-12T10:00:00Z: the 12th overlaps either side of 10:00
    expect(byDay('1980-04-12', cover('1980-04-12T10:00:00Z', null))).toBe(true);
    expect(byDay('1980-04-11', cover('1980-04-12T10:00:00Z', null))).toBe(false);
    expect(byDay('1980-04-12', cover(null, '1980-04-12T10:00:01Z'))).toBe(true);
    expect(byDay('1980-04-13', cover(null, '1980-04-12T10:00:01Z'))).toBe(false);
  });
});
