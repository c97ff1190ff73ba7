import { AppError } from '../../common/errors/app-error.js';
import { dateTerms, exactTerm, tokenTerms } from './blind-terms.js';
import { phiTerms } from './phi-terms.js';

const family = { code: 'family', type: 'string' as const };
const birthdate = { code: 'birthdate', type: 'date' as const };
const identifier = { code: 'identifier', type: 'token' as const };

/** The status and issue code work throws, as the OperationOutcome will carry them. */
function refusal(work: () => unknown): string | undefined {
  try {
    work();
  } catch (error) {
    return error instanceof AppError ? `${error.status} ${error.issues[0]?.code}` : 'other';
  }
  return undefined;
}

describe('phiTerms: what a PHI criterion matches, before hashing', () => {
  it('matches a name by prefix, :exact by the whole part, and warns on values too short', () => {
    const warnings = new Set<string>();
    expect(phiTerms(family, { code: 'family', values: ['Nguy'] }, warnings).terms).toEqual([
      'p:nguy',
    ]);
    expect(warnings.size).toBe(0);
    expect(
      phiTerms(family, { code: 'family', modifier: 'exact', values: ['Ñúñez'] }, warnings).terms,
    ).toEqual([exactTerm('nunez')]);
    expect(phiTerms(family, { code: 'family', values: ['Ng'] }, warnings).terms).toEqual([
      exactTerm('ng'),
    ]);
    expect([...warnings]).toEqual([expect.stringContaining('family values shorter than 3')]);
  });

  it('looks a name up under the legacy normalization too, until search:reindex rewrites old rows', () => {
    const warnings = new Set<string>();
    expect(phiTerms(family, { code: 'family', values: ['Straße'] }, warnings).terms).toEqual([
      'p:strasse',
      'p:straße',
    ]);
    expect(
      phiTerms(family, { code: 'family', modifier: 'exact', values: ['Đặng'] }, warnings).terms,
    ).toEqual([exactTerm('dang'), exactTerm('đang')]);
    expect(phiTerms(family, { code: 'family', values: ['Nguyễn'] }, warnings).terms).toEqual([
      'p:nguyen',
    ]);
  });

  it('looks a long prefix up as rows before index version 5 cut it too, until search:reindex', () => {
    const none = new Set<string>();
    // 12 characters, 24 UTF-16 units: those rows hold its first 20 units, ten characters.
    const tangut = '𗼇𗅋𗁅𘝞𗂧𗤶𗈪𗡞𘃡𗹦𗾞𗂸';
    const criterion = { code: 'family', values: [tangut] };
    expect(phiTerms(family, criterion, none, false, true).terms).toEqual([
      `p:${tangut}`,
      `p:${tangut.slice(0, 20)}`,
    ]);
    expect(phiTerms(family, criterion, none, false, false).terms).toEqual([`p:${tangut}`]);
    // Shorter, or of the Basic Multilingual Plane only, the prefix is the one it was.
    expect(phiTerms(family, { code: 'family', values: ['𠮷野家'] }, none).terms).toEqual([
      'p:𠮷野家',
    ]);
    const long = 'Wolfeschlegelsteinhausenbergerdorff';
    expect(phiTerms(family, { code: 'family', values: [long] }, none).terms).toEqual([
      'p:wolfeschlegelsteinha',
    ]);
    expect(
      phiTerms(family, { code: 'family', modifier: 'exact', values: [tangut] }, none).terms,
    ).toEqual([exactTerm(tangut)]);
  });

  it('looks a name up with every mark dropped too, as index versions 3 to 5 wrote it, until search:reindex', () => {
    const warnings = new Set<string>();
    // राम (Ram) is three characters, a prefix; those rows hold रम, of two, a whole part.
    const ram = { code: 'family', values: ['राम'] };
    expect(phiTerms(family, ram, warnings, false, false, true).terms).toEqual([
      'p:राम',
      exactTerm('रम'),
    ]);
    expect(warnings.size).toBe(0);
    expect(phiTerms(family, ram, warnings, false, false, false).terms).toEqual(['p:राम']);
    // 김 is one syllable, a whole part (and the searchset says so); those rows hold its jamo.
    expect(
      phiTerms(family, { code: 'family', values: ['김'] }, warnings, false, false, true).terms,
    ).toEqual([exactTerm('김'), 'p:\u1100\u1175\u11b7']);
    expect(warnings.size).toBe(1);
  });

  it('refuses :contains, other modifiers and values without letters or digits', () => {
    const none = new Set<string>();
    for (const [modifier, values] of [
      ['contains', ['ngu']],
      ['text', ['ngu']],
      [undefined, [' -- ']],
    ] as const) {
      const criterion = { code: 'family', ...(modifier ? { modifier } : {}), values: [...values] };
      expect([modifier, refusal(() => phiTerms(family, criterion, none))]).toEqual([
        modifier,
        modifier === 'text' ? '400 not-supported' : '400 invalid',
      ]);
    }
  });

  it('matches identifiers with or without a system, and :not negates the criterion', () => {
    const none = new Set<string>();
    const [byValue, bySystem] = tokenTerms('urn:mrn', 'A1');
    expect(
      phiTerms(identifier, { code: 'identifier', values: ['urn:mrn|A1', 'A1'] }, none),
    ).toEqual({ terms: [bySystem, byValue], excluded: [], negate: false });
    expect(
      phiTerms(identifier, { code: 'identifier', modifier: 'not', values: ['A1'] }, none).negate,
    ).toBe(true);
    expect(
      refusal(() => phiTerms(identifier, { code: 'identifier', values: ['urn:mrn|'] }, none)),
    ).toBe('400 invalid');
  });

  it('keeps a ne value apart from the others, and refuses times and ap on birth dates', () => {
    const none = new Set<string>();
    const terms = phiTerms(birthdate, { code: 'birthdate', values: ['ne1980', 'eq1975-03'] }, none);
    expect(terms).toEqual({ terms: ['m:1975-03'], excluded: ['y:1980'], negate: false });
    // A range: the buckets it covers, which hold every date stored inside it.
    const range = phiTerms(birthdate, { code: 'birthdate', values: ['ge1980-04-12'] }, none);
    expect(dateTerms('1999-12-31').some((term) => range.terms.includes(term))).toBe(true);
    expect(dateTerms('1980-04-11').some((term) => range.terms.includes(term))).toBe(false);
    for (const value of ['1980-04-12T10:00:00Z', 'ap1980', '1980-13']) {
      const criterion = { code: 'birthdate', values: [value] };
      expect([value, refusal(() => phiTerms(birthdate, criterion, none))]).toEqual([
        value,
        value === '1980-13' ? '400 invalid' : '400 not-supported',
      ]);
    }
  });

  it('gives each term once however many values cover it: 100 ranges were 43,550 hashes to compute and match', () => {
    const none = new Set<string>();
    const one = phiTerms(birthdate, { code: 'birthdate', values: ['ge1001'] }, none).terms;
    const values = Array.from({ length: 100 }, (_, i) => `ge${1001 + i}`);
    const many = phiTerms(birthdate, { code: 'birthdate', values }, none);
    expect(many.terms).toHaveLength(new Set(many.terms).size);
    expect(new Set(many.terms)).toEqual(new Set(one));
    // Ranges open on either side, sa and eb apart: the union of what each finds.
    const mixed = ['ge1990-05', 'le1970-02-03', 'sa2000', 'eb1950', 'gt1991', 'eq1980'];
    const each = mixed.flatMap(
      (value) => phiTerms(birthdate, { code: 'birthdate', values: [value] }, none).terms,
    );
    const all = phiTerms(birthdate, { code: 'birthdate', values: mixed }, none).terms;
    expect(new Set(all)).toEqual(new Set(each));
    const ne = phiTerms(birthdate, { code: 'birthdate', values: ['ne1980', 'ne1980'] }, none);
    expect(ne.excluded).toEqual(['y:1980']);
  });
});
