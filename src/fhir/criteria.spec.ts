import { criteriaKey, criteriaQuery } from './criteria.js';

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

  it('keeps a NUL escaped in the key, which PostgreSQL text cannot hold', () => {
    expect(criteriaKey('Patient', 'identifier=a%00&fam%00ily=x')).toBe(
      'Patient?fam%00ily=x&identifier=a%00',
    );
  });
});
