import { embeddedResourceIssue } from './embedded-resources.js';
import type { FhirResource } from './fhir-types.js';

const TYPES = new Set(['Patient', 'Observation', 'Medication', 'Bundle', 'Parameters']);
const isResourceType = (type: string) => TYPES.has(type);

function firstIssue(resource: FhirResource): string | undefined {
  return embeddedResourceIssue(resource, isResourceType)?.expression?.[0];
}

describe('embeddedResourceIssue', () => {
  it.each<[string, FhirResource, string]>([
    [
      'a data type contained',
      { resourceType: 'Patient', contained: [{ resourceType: 'HumanName', id: 'a' }] },
      'Patient.contained[0]',
    ],
    [
      'a contained object without a type',
      {
        resourceType: 'Patient',
        contained: [{ resourceType: 'Medication', id: 'a' }, { id: 'b' }],
      },
      'Patient.contained[1]',
    ],
    [
      'a contained id that is no id',
      { resourceType: 'Patient', contained: [{ resourceType: 'Medication', id: 'a b' }] },
      'Patient.contained[0].id',
    ],
    [
      "a Bundle entry's abstract type",
      {
        resourceType: 'Bundle',
        type: 'collection',
        entry: [{ resource: { resourceType: 'Resource' } }],
      },
      'Bundle.entry[0].resource',
    ],
    [
      "a contained resource's in a Bundle entry",
      {
        resourceType: 'Bundle',
        entry: [
          { fullUrl: 'urn:uuid:1' },
          {
            resource: {
              resourceType: 'Observation',
              contained: [{ resourceType: 'Quantity', id: 'q' }],
            },
          },
        ],
      },
      'Bundle.entry[1].resource.contained[0]',
    ],
    [
      "a Parameters part's",
      {
        resourceType: 'Parameters',
        parameter: [
          { name: 'a', valueString: 'x' },
          { name: 'b', part: [{ name: 'c', resource: { resourceType: 7 } }] },
        ],
      },
      'Parameters.parameter[1].part[0].resource',
    ],
  ])('names %s', (_case, resource, expression) => {
    expect(firstIssue(resource)).toBe(expression);
  });

  it('passes resources of known types and ids, and leaves non-objects to the validator', () => {
    expect(
      firstIssue({
        resourceType: 'Bundle',
        entry: [
          { resource: { resourceType: 'Patient', id: 'p-1.2' } },
          { resource: 'not an object' },
          { request: { method: 'DELETE', url: 'Patient/1' } },
        ],
      }),
    ).toBeUndefined();
    expect(
      firstIssue({
        resourceType: 'Observation',
        contained: [{ resourceType: 'Medication', id: 'm1' }, null],
      }),
    ).toBeUndefined();
  });

  it('names the type in its message only when it is a plain word', () => {
    const named = embeddedResourceIssue(
      { resourceType: 'Patient', contained: [{ resourceType: 'HumanName', id: 'a' }] },
      isResourceType,
    );
    expect(named?.diagnostics).toContain('(HumanName)');
    const unnamed = embeddedResourceIssue(
      { resourceType: 'Patient', contained: [{ resourceType: 'Jane Doe 1970', id: 'a' }] },
      isResourceType,
    );
    expect(unnamed?.diagnostics).not.toContain('Jane');
  });
});
