import { FhirDefinitions } from './fhir-definitions.js';
import { validationIssues } from '../../test/support/validation.js';
import { hasSyntheaSamples, syntheaResources } from '../../test/support/synthea-samples.js';

const CLINICAL = 'http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical';

describe('Required bindings', () => {
  const definitions = new FhirDefinitions();

  const problems = (resource: Record<string, unknown>) => validationIssues(definitions, resource);

  it('refuses a code outside the value set, naming the element and the codes, not the value', () => {
    expect(problems({ resourceType: 'Patient', gender: 'male' })).toEqual([]);
    expect(problems({ resourceType: 'Patient', gender: 'M' })).toEqual([
      {
        severity: 'error',
        code: 'code-invalid',
        diagnostics:
          'Patient.gender must be a code of the required value set http://hl7.org/fhir/ValueSet/administrative-gender: one of male, female, other, unknown',
        expression: ['Patient.gender'],
      },
    ]);
    const observation = {
      resourceType: 'Observation',
      status: 'done',
      code: { text: 'weight' },
      valueQuantity: { value: 1, comparator: '~' },
    };
    expect(problems(observation).map((issue) => issue.expression)).toEqual([
      ['Observation.status'],
      ['Observation.value[x].comparator'],
    ]);
  });

  it('takes a CodeableConcept with one coding from the value set, or with text only', () => {
    const allergy = (clinicalStatus: unknown) => ({
      resourceType: 'AllergyIntolerance',
      patient: { reference: 'Patient/1' },
      clinicalStatus,
    });
    expect(problems(allergy({ coding: [{ system: CLINICAL, code: 'active' }] }))).toEqual([]);
    expect(
      problems(
        allergy({
          coding: [
            { system: 'http://example.org/local', code: 'A' },
            { system: CLINICAL, code: 'resolved' },
          ],
        }),
      ),
    ).toEqual([]);
    expect(problems(allergy({ text: 'active' }))).toEqual([]);
    expect(problems(allergy({ coding: [{ system: CLINICAL, code: 'cured' }] }))).toMatchObject([
      { code: 'code-invalid', expression: ['AllergyIntolerance.clinicalStatus'] },
    ]);
    expect(
      problems(allergy({ coding: [{ system: 'http://example.org', code: 'active' }] })),
    ).toHaveLength(1);
  });

  it('leaves alone value sets drawn from code systems it does not hold (MIME types)', () => {
    expect(
      problems({
        resourceType: 'DocumentReference',
        status: 'current',
        content: [{ attachment: { contentType: 'application/x-made-up' } }],
      }),
    ).toEqual([]);
    expect(
      problems({
        resourceType: 'DocumentReference',
        status: 'draft',
        content: [{ attachment: { contentType: 'text/plain' } }],
      }),
    ).toMatchObject([{ expression: ['DocumentReference.status'] }]);
  });

  (hasSyntheaSamples ? it : it.skip)('accepts every Synthea sample resource', async () => {
    const refused: string[] = [];
    for (const resource of await syntheaResources()) {
      for (const issue of problems(resource)) refused.push(issue.diagnostics);
    }
    expect(refused).toEqual([]);
  });
});
