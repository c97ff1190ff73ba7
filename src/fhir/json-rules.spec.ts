import type { FhirResource } from './fhir-types.js';
import { jsonRuleBreak } from './json-rules.js';

/** An extension, which gives an element children. */
const X = { url: 'http://example.org/x', valueString: 'x' };

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

  it('names an empty object, which FHIR JSON never has (ele-1)', () => {
    expect(jsonRuleBreak({ resourceType: 'Patient', text: {} })).toEqual({
      path: 'Patient.text',
      rule: 'empty',
    });
    expect(jsonRuleBreak({ resourceType: 'Patient', name: [{ period: {} }] })).toEqual({
      path: 'Patient.name[0].period',
      rule: 'empty',
    });
    expect(jsonRuleBreak({ resourceType: 'Patient', _birthDate: {} })).toEqual({
      path: 'Patient._birthDate',
      rule: 'empty',
    });
  });

  it.each<[Record<string, unknown>, string]>([
    [{ maritalStatus: { id: 'm' } }, 'Patient.maritalStatus'],
    [{ name: [{ family: 'F' }, { id: 'n' }] }, 'Patient.name[1]'],
    [{ _birthDate: { id: 'b' } }, 'Patient._birthDate'],
    [
      { name: [{ given: ['Ann', null], _given: [null, { id: 'g' }] }] },
      'Patient.name[0]._given[1]',
    ],
    [
      {
        extension: [X, { url: X.url, valuePeriod: { id: 'p' } }],
      },
      'Patient.extension[1].valuePeriod',
    ],
  ])(
    'names an element of an id alone, which has no value and no children (ele-1): %j',
    (elements, path) => {
      expect(jsonRuleBreak({ resourceType: 'Patient', ...elements })).toEqual({
        path,
        rule: 'id-only',
      });
    },
  );

  it("passes an id beside a value: a primitive's, or its children", () => {
    expect(
      jsonRuleBreak({
        resourceType: 'Patient',
        birthDate: '1970-01-01',
        _birthDate: { id: 'b' },
        name: [{ id: 'n', family: 'F', given: ['Ann'], _given: [{ id: 'g' }] }],
      }),
    ).toBeUndefined();
  });

  it.each<[Record<string, unknown>, string]>([
    [{ _gender: 'male' }, 'Patient._gender'],
    [{ birthDate: '1970-01-01', _birthDate: 5 }, 'Patient._birthDate'],
    [{ name: [{ given: ['a'], _given: ['x'] }] }, 'Patient.name[0]._given'],
    [{ name: [{ given: ['a'], _given: { id: 'x' } }] }, 'Patient.name[0]._given'],
    [{ name: [{ given: ['a', 'b'], _given: [null] }] }, 'Patient.name[0]._given'],
    [{ name: [{ _given: [null] }] }, 'Patient.name[0]._given'],
    [{ name: [{ family: 'F' }], _name: [{ id: 'n' }] }, 'Patient._name'],
    [{ maritalStatus: { text: 'M' }, _maritalStatus: { id: 'm' } }, 'Patient._maritalStatus'],
    [{ gender: 'male', _gender: [{ id: 'g' }] }, 'Patient._gender'],
  ])('names a primitive extension of the wrong shape: %j', (elements, path) => {
    expect(jsonRuleBreak({ resourceType: 'Patient', ...elements })).toEqual({
      path,
      rule: 'primitive-extension',
    });
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
        telecom: [{ _value: { extension: [{ url: 'http://x', valueString: 'masked' }] } }],
      }),
    ).toBeUndefined();
    expect(
      jsonRuleBreak({
        resourceType: 'Patient',
        name: [
          { given: ['Ann', null], _given: [{ id: 'g1' }, { extension: [X] }] },
          { _given: [{ extension: [X] }] },
        ],
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
      jsonRuleBreak({
        resourceType: 'Patient',
        constructorX: 1,
        _toString: { id: 'a', extension: [X] },
      }),
    ).toBeUndefined();
  });
});
