import { FhirDefinitions } from './fhir-definitions.js';
import { validationIssues } from '../../test/support/validation.js';
import { hasSyntheaSamples, syntheaResources } from '../../test/support/synthea-samples.js';

describe('Reference target types', () => {
  const definitions = new FhirDefinitions();

  const problems = (resource: Record<string, unknown>) => validationIssues(definitions, resource);

  const observation = (changes: Record<string, unknown>) => ({
    resourceType: 'Observation',
    status: 'final',
    code: { text: 'x' },
    ...changes,
  });

  const medication = { resourceType: 'Medication', id: 'm1', code: { text: 'Amoxicillin' } };

  it('refuses a local reference to a contained resource of a type the element does not allow', () => {
    expect(
      problems(observation({ contained: [medication], subject: { reference: '#m1' } })),
    ).toEqual([
      expect.objectContaining({
        code: 'invalid',
        diagnostics: expect.stringMatching(
          /^Observation\.subject refers to a Medication, which it cannot: it refers to Patient, Group, Device, Location$/,
        ) as unknown,
        expression: ['Observation.subject'],
      }),
    ]);
  });

  it('refuses a relative, absolute, conditional or logical reference to a type not allowed', () => {
    for (const subject of [
      { reference: 'Medication/1' },
      { reference: 'Medication/1/_history/2' },
      { reference: 'https://other.example/fhir/Medication/1' },
      { reference: 'Medication?code=x' },
      { type: 'Medication', identifier: { system: 'urn:x', value: '1' } },
    ]) {
      expect([subject, problems(observation({ subject })).map((i) => i.expression)]).toEqual([
        subject,
        [['Observation.subject']],
      ]);
    }
  });

  it('checks references no search parameter indexes, in extensions, backbone elements and contained resources', () => {
    const cases: [Record<string, unknown>, string][] = [
      [
        observation({ note: [{ authorReference: { reference: 'Medication/1' }, text: 'n' }] }),
        'Observation.note[0].author[x]',
      ],
      [
        {
          resourceType: 'Patient',
          contact: [{ organization: { reference: 'Medication/1' } }],
        },
        'Patient.contact[0].organization',
      ],
      [
        {
          resourceType: 'MedicationRequest',
          status: 'active',
          intent: 'order',
          medicationReference: { reference: '#m1' },
          subject: { reference: 'Patient/1' },
          contained: [
            medication,
            {
              resourceType: 'Provenance',
              id: 'p1',
              target: [{ reference: '#' }],
              recorded: '2024-01-01T00:00:00Z',
              agent: [{ who: { reference: '#m1' } }],
            },
          ],
        },
        'MedicationRequest.contained[1].agent[0].who',
      ],
    ];
    for (const [resource, expression] of cases) {
      expect(problems(resource).map((i) => i.expression)).toEqual([[expression]]);
    }
  });

  it("refuses a reference naming what is no resource type, a primitive's extension's too", () => {
    const onBirthDate = (reference: string) => ({
      resourceType: 'Patient',
      birthDate: '2000-01-01',
      _birthDate: {
        extension: [{ url: 'https://example.org/x', valueReference: { reference } }],
      },
    });
    expect(problems(onBirthDate('Foo/1')).map((i) => i.expression)).toEqual([
      ['Patient.birthDate.extension[0].value[x]'],
    ]);
    expect(problems(onBirthDate('Patient/1'))).toEqual([]);
    for (const reference of ['Foo/1', 'PATIENT/1', 'Foo?x=1', 'https://other.example/fhir/Foo/1']) {
      const resource = observation({
        extension: [{ url: 'https://example.org/x', valueReference: { reference } }],
      });
      expect([reference, problems(resource)]).toEqual([
        reference,
        [
          expect.objectContaining({
            diagnostics: expect.stringMatching(
              / names a (Foo|PATIENT), which is not a resource type$/,
            ) as unknown,
            expression: ['Observation.extension[0].value[x]'],
          }),
        ],
      ]);
    }
  });

  it('takes the types an element allows, whatever the reference form, and any type where it allows any', () => {
    const patient = { resourceType: 'Patient', id: 'p1' };
    for (const resource of [
      observation({ contained: [patient], subject: { reference: '#p1' } }),
      observation({ subject: { reference: 'Group/1' } }),
      observation({ subject: { reference: 'https://other.example/fhir/Device/1' } }),
      observation({ subject: { reference: 'urn:uuid:6e6b8a8c-2b1f-4c59-9d3e-0b1f0c1a2b3c' } }),
      observation({ subject: { identifier: { system: 'urn:x', value: '1' } } }),
      observation({ focus: [{ reference: 'Medication/1' }] }),
      observation({
        extension: [
          { url: 'https://example.org/x', valueReference: { reference: 'Medication/1' } },
        ],
      }),
      {
        resourceType: 'Provenance',
        target: [{ reference: 'Medication/1' }],
        recorded: '2024-01-01T00:00:00Z',
        agent: [{ who: { reference: 'Patient/1' } }],
      },
    ]) {
      expect(problems(resource)).toEqual([]);
    }
  });

  (hasSyntheaSamples ? it : it.skip)('finds nothing to refuse in Synthea', async () => {
    const refused = (await syntheaResources({ resolved: true }))
      .map((resource) => ({ type: resource.resourceType, issues: problems(resource) }))
      .filter(({ issues }) => issues.length > 0);
    expect(refused).toEqual([]);
  });
});
