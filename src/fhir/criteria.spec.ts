import { criteriaKey, criteriaLocks, criteriaQuery, type ParamLookup } from './criteria.js';

const TYPES: Record<string, string> = {
  identifier: 'token',
  gender: 'token',
  family: 'string',
  birthdate: 'date',
  subject: 'reference',
  code: 'token',
};
const lookup: ParamLookup = (code) => {
  const name = code === 'patient' ? 'subject' : code;
  return TYPES[name] ? { code: name, type: TYPES[name] } : undefined;
};
/** The exclusive keys of criteria on Patient. */
const exclusive = (criteria: string, type = 'Patient') =>
  criteriaLocks(type, criteria, lookup)
    .filter((lock) => !lock.shared)
    .map((lock) => lock.key)
    .sort();
/** Whether two criteria's locks make them wait for each other. */
const contend = (a: string, b: string, type = 'Patient') => {
  const [one, two] = [criteriaLocks(type, a, lookup), criteriaLocks(type, b, lookup)];
  return one.some((x) => two.some((y) => x.key === y.key && !(x.shared && y.shared)));
};

describe('conditional criteria', () => {
  it('takes the query alone, with or without its type in front', () => {
    expect(criteriaQuery('Patient', 'Patient?identifier=a|1')).toBe('identifier=a|1');
    expect(criteriaQuery('Patient', 'identifier=a|1')).toBe('identifier=a|1');
    expect(criteriaQuery('Patient', 'Organization?identifier=a|1')).toBe(
      'Organization?identifier=a|1',
    );
  });

  it('keys the same criteria the same way whatever their order or prefix', () => {
    const key = criteriaKey('Patient', 'identifier=a|1&birthdate=1980');
    expect(criteriaKey('Patient', 'Patient?birthdate=1980&identifier=a%7C1')).toBe(key);
    expect(criteriaKey('Patient', 'identifier=a|2&birthdate=1980')).not.toBe(key);
    expect(criteriaKey('Person', 'identifier=a|1&birthdate=1980')).not.toBe(key);
  });

  it('locks each value a token or reference criteria constrains, whatever its system or form', () => {
    const key = exclusive('identifier=urn:oid:1.2|M-1');
    expect(key).toEqual(['Patient?identifier=m-1']);
    for (const same of [
      'identifier=M-1',
      'Patient?identifier=%7CM-1',
      'identifier=urn:oid:9.9|m-1',
      'identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|MR|M-1',
    ]) {
      expect(exclusive(same)).toEqual(key);
    }
    expect(exclusive('identifier=a|2,b|1&gender=male')).toEqual(
      exclusive('gender=MALE&identifier=1,2'),
    );
    expect(exclusive('subject=Patient/7', 'Observation')).toEqual(['Observation?subject=7']);
    expect(exclusive('patient=http://x/fhir/Patient/7', 'Observation')).toEqual(
      exclusive('subject=7', 'Observation'),
    );
    expect(exclusive('identifier=M-1', 'Person')).not.toEqual(key);
    // An escaped comma or bar is part of the value.
    expect(exclusive('identifier=a\\,b')).toEqual(['Patient?identifier=a\\,b']);
  });

  it('makes criteria wait for each other when they constrain a parameter in common', () => {
    // The duplicate they prevent: both find no Patient, both create one with MRN M-1.
    expect(contend('identifier=M-1', 'identifier=M-1&gender=female')).toBe(true);
    expect(contend('identifier=sys|M-1', 'identifier=M-1,M-2')).toBe(true);
    expect(contend('identifier=M-1', 'identifier=M-1&family=Smith')).toBe(true);
    // Values that overlap without being equal, a modifier, a token without a code: the whole
    // parameter.
    expect(contend('family=smi', 'family=smith&identifier=M-9')).toBe(true);
    expect(contend('birthdate=1980', 'birthdate=1980-01-01')).toBe(true);
    expect(contend('identifier=sys|', 'identifier=M-1')).toBe(true);
    expect(contend('identifier:not=M-2', 'identifier=M-1')).toBe(true);
    expect(contend('subject.name=x', 'subject=1')).toBe(true);
    expect(contend('birthdate=1980', 'identifier=M-1&birthdate=1980')).toBe(true);
    expect(contend('', 'identifier=M-1')).toBe(true);
    // Distinct values of a token do not wait for each other, nor criteria with no parameter in
    // common, nor a parameter locked whole where each locks another's values (a feed's
    // upserts of one date for many patients would queue otherwise).
    expect(contend('identifier=M-1', 'identifier=M-2')).toBe(false);
    expect(contend('identifier=M-1&gender=male', 'identifier=M-2&gender=female')).toBe(false);
    expect(contend('identifier=M-1', 'family=Smith')).toBe(false);
    expect(contend('identifier=M-1&birthdate=1980', 'identifier=M-2&birthdate=1980')).toBe(false);
  });

  it("locks one anchor's values, so a feed's upserts of one code for many patients do not queue", () => {
    expect(exclusive('subject=Patient/7&code=http://loinc.org|2345-7', 'Observation')).toEqual([
      'Observation?subject=7',
    ]);
    expect(exclusive('code=a&identifier=M-1&subject=7', 'Observation')).toEqual([
      'Observation?identifier=m-1',
    ]);
    expect(contend('subject=1&code=2345-7', 'subject=2&code=2345-7', 'Observation')).toBe(false);
    expect(contend('subject=1&code=a', 'code=a,b&subject=1', 'Observation')).toBe(true);
    // Criteria anchored elsewhere do not wait (the README says so): `code` is the anchor of one
    // and `subject` of the other.
    expect(contend('code=a', 'subject=1&code=a', 'Observation')).toBe(false);
    // Without an anchor, the parameter is locked whole, and waits for every anchored writer.
    expect(contend('code:text=x', 'subject=1&code=a', 'Observation')).toBe(true);
  });

  it('locks criteria without a parameter on the whole type, which others hold shared', () => {
    expect(exclusive('')).toEqual(['Patient?']);
  });
  it('keeps a NUL escaped in the criteria key, which PostgreSQL text cannot hold', () => {
    expect(criteriaKey('Patient', 'identifier=a%00&fam%00ily=x')).toBe(
      'Patient?fam%00ily=x&identifier=a%00',
    );
  });
});
