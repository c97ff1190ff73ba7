import type { FhirResource } from './fhir-types.js';
import { jsonRuleBreak } from './json-rules.js';

describe('jsonRuleBreak', () => {
  it('names the first empty string or array, with array indexes', () => {
    expect(jsonRuleBreak({ resourceType: 'Patient', gender: '' })).toEqual({
      path: 'Patient.gender',
      rule: 'empty',
    });
    expect(jsonRuleBreak({ resourceType: 'Patient', name: [] })).toEqual({
      path: 'Patient.name',
      rule: 'empty',
    });
    expect(
      jsonRuleBreak({
        resourceType: 'Patient',
        identifier: [
          { system: 'urn:mrn', value: '1' },
          { system: '', value: '2' },
        ],
      }),
    ).toEqual({ path: 'Patient.identifier[1].system', rule: 'empty' });
    expect(
      jsonRuleBreak({
        resourceType: 'Observation',
        contained: [{ resourceType: 'Patient', name: [{ given: ['Ann', ''] }] }],
      }),
    ).toEqual({ path: 'Observation.contained[0].name[0].given[1]', rule: 'empty' });
  });

  it('passes values, nulls of primitive extensions, zero and false', () => {
    expect(
      jsonRuleBreak({
        resourceType: 'Patient',
        active: false,
        multipleBirthInteger: 0,
        name: [{ given: ['Ann', 'Lee'] }],
        _birthDate: { extension: [{ url: 'http://x', valueString: 'y' }] },
        address: [{ line: ['1 Main St', null] }],
      }),
    ).toBeUndefined();
  });

  it('names the first key that every object has, at any depth, an own __proto__ included', () => {
    const cases: [FhirResource, string][] = [
      [{ resourceType: 'Patient', toString: { a: 'b' } }, 'Patient.toString'],
      [{ resourceType: 'Patient', name: [{ valueOf: 'x' }] }, 'Patient.name[0].valueOf'],
      [{ resourceType: 'Patient', meta: { constructor: {} } }, 'Patient.meta.constructor'],
      [JSON.parse('{"resourceType":"Patient","__proto__":{"x":1}}'), 'Patient.__proto__'],
      [
        {
          resourceType: 'Observation',
          valueQuantity: { value: 1, hasOwnProperty: 'x' },
        },
        'Observation.valueQuantity.hasOwnProperty',
      ],
    ];
    for (const [resource, path] of cases) {
      expect(jsonRuleBreak(resource)).toEqual({ path, rule: 'prototype-key' });
    }
    // Names that merely start like them are elements like any other.
    expect(
      jsonRuleBreak({ resourceType: 'Patient', constructorX: 1, _toString: 2 }),
    ).toBeUndefined();
  });
});
