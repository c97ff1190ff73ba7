import { AppError } from '../common/errors/app-error.js';
import { FhirDefinitions } from './fhir-definitions.js';
import type { FhirResource } from './fhir-types.js';

const UCUM = 'http://unitsofmeasure.org';

function observation(extra: Record<string, unknown>): FhirResource {
  return { resourceType: 'Observation', status: 'final', code: { text: 'Potassium' }, ...extra };
}

function medicationRequest(extra: Record<string, unknown>): FhirResource {
  return {
    resourceType: 'MedicationRequest',
    status: 'active',
    intent: 'order',
    subject: { reference: 'Patient/p' },
    medicationCodeableConcept: { text: 'Amoxicillin' },
    ...extra,
  };
}

function condition(extra: Record<string, unknown>): FhirResource {
  return { resourceType: 'Condition', subject: { reference: 'Patient/p' }, ...extra };
}

describe('the invariants of data types', () => {
  const definitions = new FhirDefinitions();

  function refusal(resource: FhirResource): { diagnostics: string; expression: string[] } {
    try {
      definitions.validate(resource);
    } catch (error) {
      if (!(error instanceof AppError)) throw error;
      const [issue] = error.issues;
      return { diagnostics: issue?.diagnostics ?? '', expression: issue?.expression ?? [] };
    }
    throw new Error('The resource was accepted');
  }

  it.each<[string, FhirResource, string, string]>([
    [
      'a reference range bound with a comparator, a SimpleQuantity (sqty-1)',
      observation({ referenceRange: [{ low: { value: 3.5, comparator: '>' } }] }),
      'sqty-1',
      'Observation.referenceRange[0].low',
    ],
    [
      'a Range value[x] whose low is above its high (rng-2, guarded by its type)',
      observation({ valueRange: { low: { value: 9 }, high: { value: 1 } } }),
      'rng-2',
      'Observation.value[x]',
    ],
    [
      'a unit code with no system (qty-3)',
      observation({ valueQuantity: { value: 4.2, code: 'mmol/L' } }),
      'qty-3',
      'Observation.value[x]',
    ],
    [
      'a ratio with a denominator and no numerator (rat-1)',
      observation({ valueRatio: { denominator: { value: 1 } } }),
      'rat-1',
      'Observation.value[x]',
    ],
    [
      'a dispensed quantity with a comparator, a SimpleQuantity (sqty-1)',
      medicationRequest({ dispenseRequest: { quantity: { value: 5, comparator: '<' } } }),
      'sqty-1',
      'MedicationRequest.dispenseRequest.quantity',
    ],
    [
      'a negative age (age-1)',
      condition({ onsetAge: { value: -3, system: UCUM, code: 'a' } }),
      'age-1',
      'Condition.onset[x]',
    ],
    [
      'an attachment with data and no content type (att-1)',
      {
        resourceType: 'DocumentReference',
        status: 'current',
        content: [{ attachment: { data: 'aGVsbG8=' } }],
      },
      'att-1',
      'DocumentReference.content[0].attachment',
    ],
    [
      'a telecom value with no system (cpt-2)',
      { resourceType: 'Patient', telecom: [{ value: '+44 20 7946 0000' }] },
      'cpt-2',
      'Patient.telecom[0]',
    ],
    [
      'a dose range inside a data type inside a backbone element (Dosage, rng-2)',
      medicationRequest({
        dosageInstruction: [
          { doseAndRate: [{ doseRange: { low: { value: 2 }, high: { value: 1 } } }] },
        ],
      }),
      'rng-2',
      'MedicationRequest.dosageInstruction[0].doseAndRate[0].dose[x]',
    ],
  ])('refuses %s', (_name, resource, key, expression) => {
    const refused = refusal(resource);
    expect(refused.diagnostics).toContain(`Constraint ${key} not met`);
    expect(refused.expression).toEqual([expression]);
  });

  it.each<[string, FhirResource]>([
    [
      'a reference range in order, and one with a low only',
      observation({
        referenceRange: [
          { low: { value: 3.5, unit: 'mmol/L' }, high: { value: 5.1, unit: 'mmol/L' } },
          { low: { value: 3.5 } },
        ],
      }),
    ],
    [
      'a unit code with its system',
      observation({ valueQuantity: { value: 4.2, system: UCUM, code: 'mmol/L' } }),
    ],
    [
      'a quantity with a comparator where it is a Quantity',
      observation({ valueQuantity: { value: 5, comparator: '<' } }),
    ],
    [
      'a ratio',
      observation({ valueRatio: { numerator: { value: 1 }, denominator: { value: 8 } } }),
    ],
    ['a string value beside the guards of value[x]', observation({ valueString: 'negative' })],
    ['an age in years', condition({ onsetAge: { value: 52, system: UCUM, code: 'a' } })],
    [
      'an extension with a value (ext-1, the element’s own)',
      { resourceType: 'Patient', extension: [{ url: 'http://example.org/x', valueString: 'a' }] },
    ],
  ])('takes %s', (_name, resource) => {
    expect(() => definitions.validate(resource)).not.toThrow();
  });

  it('adds them once, however many times the definitions are indexed', () => {
    new FhirDefinitions();
    const refused = refusal(observation({ valueQuantity: { value: 4.2, code: 'mmol/L' } }));
    expect(refused.diagnostics).toContain('qty-3');
  });
});
