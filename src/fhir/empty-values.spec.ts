import { emptyValuePath } from './empty-values.js';

describe('emptyValuePath', () => {
  it('names the first empty string or array, with array indexes', () => {
    expect(emptyValuePath({ resourceType: 'Patient', gender: '' })).toBe('Patient.gender');
    expect(emptyValuePath({ resourceType: 'Patient', name: [] })).toBe('Patient.name');
    expect(
      emptyValuePath({
        resourceType: 'Patient',
        identifier: [
          { system: 'urn:mrn', value: '1' },
          { system: '', value: '2' },
        ],
      }),
    ).toBe('Patient.identifier[1].system');
    expect(
      emptyValuePath({
        resourceType: 'Observation',
        contained: [{ resourceType: 'Patient', name: [{ given: ['Ann', ''] }] }],
      }),
    ).toBe('Observation.contained[0].name[0].given[1]');
  });

  it('passes values, nulls of primitive extensions, zero and false', () => {
    expect(
      emptyValuePath({
        resourceType: 'Patient',
        active: false,
        multipleBirthInteger: 0,
        name: [{ given: ['Ann', 'Lee'] }],
        _birthDate: { extension: [{ url: 'http://x', valueString: 'y' }] },
        address: [{ line: ['1 Main St', null] }],
      }),
    ).toBeUndefined();
  });
});
