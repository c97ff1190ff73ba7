import { observationCategory, reportCategory } from './categories.js';

const loinc = (code: string) => ({ coding: [{ system: 'http://loinc.org', code }] });
const categoryCode = (concepts: { coding?: { code?: string }[] }[]) =>
  concepts.map((concept) => concept.coding?.[0]?.code);

describe('result categories', () => {
  it('makes a vital sign vital-signs, whatever its report says', () => {
    expect(categoryCode(observationCategory(loinc('8867-4'), 'CH'))).toEqual(['vital-signs']);
    expect(categoryCode(observationCategory(loinc('29463-7')))).toEqual(['vital-signs']);
  });

  it('takes laboratory or imaging from the report section (OBR-24), and nothing from none', () => {
    expect(categoryCode(observationCategory(loinc('2345-7'), 'CH'))).toEqual(['laboratory']);
    expect(categoryCode(observationCategory(loinc('2345-7'), 'mb'))).toEqual(['laboratory']);
    expect(categoryCode(observationCategory(loinc('36643-5'), 'RAD'))).toEqual(['imaging']);
    expect(observationCategory(loinc('2345-7'), 'PHY')).toEqual([]);
    expect(observationCategory(loinc('2345-7'))).toEqual([]);
    // A local code that happens to read as a vital sign's LOINC code is not one.
    expect(observationCategory({ coding: [{ system: 'urn:local', code: '8867-4' }] })).toEqual([]);
  });

  it("gives the report its section in table 0074's system", () => {
    expect(reportCategory('HM')).toEqual([
      { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0074', code: 'HM' }] },
    ]);
    expect(reportCategory(undefined)).toEqual([]);
  });
});
