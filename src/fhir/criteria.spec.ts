import { criteriaKey, criteriaLockKey, criteriaQuery } from './criteria.js';

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

  it('locks criteria that can match the same resource under one key', () => {
    const key = criteriaLockKey('Patient', 'identifier=urn:oid:1.2|M-1');
    for (const same of [
      'identifier=M-1',
      'Patient?identifier=%7CM-1',
      'identifier=urn:oid:9.9|m-1',
      'identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|MR|M-1',
    ]) {
      expect(criteriaLockKey('Patient', same)).toBe(key);
    }
    expect(criteriaLockKey('Patient', 'identifier=a|2,b|1&gender=male')).toBe(
      criteriaLockKey('Patient', 'gender=MALE&identifier=1,2'),
    );
    expect(criteriaLockKey('Patient', 'identifier=M-2')).not.toBe(key);
    expect(criteriaLockKey('Patient', 'identifier=M-1&gender=male')).not.toBe(key);
    expect(criteriaLockKey('Person', 'identifier=M-1')).not.toBe(key);
    // An escaped comma or bar is part of the value.
    expect(criteriaLockKey('Patient', 'name=a\\,b')).not.toBe(
      criteriaLockKey('Patient', 'name=b,a'),
    );
  });

  it('keeps a NUL escaped in the key, which PostgreSQL text cannot hold', () => {
    expect(criteriaKey('Patient', 'identifier=a%00&fam%00ily=x')).toBe(
      'Patient?fam%00ily=x&identifier=a%00',
    );
    expect(criteriaLockKey('Patient', 'identifier=a%00&fam%00ily=x')).toBe(
      'Patient?fam%00ily=x&identifier=a%00',
    );
  });
});
