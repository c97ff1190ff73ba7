import { FhirDefinitions } from './fhir-definitions.js';
import type { FhirResource } from './fhir-types.js';
import { validationIssues } from '../../test/support/validation.js';

const VALID = {
  resourceType: 'Observation',
  status: 'final',
  code: { text: 'Potassium' },
  valueString: '4.2',
};

/** An Observation with a value and a reason for its absence: obs-6 refuses it. */
const BOTH = { ...VALID, dataAbsentReason: { text: 'not done' } };

describe('the invariants of resources held in others', () => {
  const definitions = new FhirDefinitions();

  it.each<[string, FhirResource, string, string]>([
    [
      'a contained Observation (obs-6)',
      {
        resourceType: 'DiagnosticReport',
        status: 'final',
        code: { text: 'Panel' },
        contained: [{ ...BOTH, id: 'o1' }],
        result: [{ reference: '#o1' }],
      },
      'obs-6',
      'DiagnosticReport.contained[0]',
    ],
    [
      "a collection Bundle's entry (obs-6)",
      { resourceType: 'Bundle', type: 'collection', entry: [{ resource: BOTH }] },
      'obs-6',
      'Bundle.entry[0].resource',
    ],
    [
      'an Observation in a Bundle entry inside a Parameters value (obs-6)',
      {
        resourceType: 'Parameters',
        parameter: [
          {
            name: 'results',
            resource: { resourceType: 'Bundle', type: 'collection', entry: [{ resource: BOTH }] },
          },
        ],
      },
      'obs-6',
      'Parameters.parameter[0].resource.entry[0].resource',
    ],
  ])('refuses %s', (_name, resource, key, expression) => {
    const [issue] = validationIssues(definitions, resource);
    expect(issue).toMatchObject({
      severity: 'error',
      diagnostics: expect.stringContaining(`Constraint ${key} not met`) as unknown,
      expression: [expression],
    });
  });

  it('takes valid held resources, and %rootResource is the container of a contained one', () => {
    const valid = VALID;
    expect(
      validationIssues(definitions, {
        resourceType: 'Bundle',
        type: 'collection',
        entry: [{ resource: valid }, { resource: { resourceType: 'Patient', gender: 'female' } }],
      }),
    ).toEqual([]);
    // A contained Observation referring to its sibling.
    expect(
      validationIssues(definitions, {
        resourceType: 'DiagnosticReport',
        status: 'final',
        code: { text: 'Panel' },
        contained: [
          { ...valid, id: 'o1', hasMember: [{ reference: '#o2' }] },
          { ...valid, id: 'o2' },
        ],
        result: [{ reference: '#o1' }],
      }),
    ).toEqual([]);
  });
});
