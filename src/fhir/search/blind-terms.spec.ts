import { dateCoverTerms, dateTerms, stringTerms } from './blind-terms.js';

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
