/**
 * Example bodies for Swagger UI: one small, valid resource for each type that integrators meet
 * first. An e2e test creates every one of them, so an example that the server would reject
 * fails the build instead of an integrator's first try. References point at `Patient/example`,
 * which the Patient update example creates (`PUT /fhir/Patient/example`): a reference must name
 * a stored resource (reference-integrity.ts).
 */
export const OPENAPI_EXAMPLES: Readonly<Record<string, Record<string, unknown>>> = {
  Patient: {
    resourceType: 'Patient',
    identifier: [{ system: 'urn:oid:2.16.840.1.113883.19.5', value: 'MRN-000123' }],
    name: [{ family: 'Example', given: ['Alex'] }],
    gender: 'female',
    birthDate: '1980-04-12',
    telecom: [{ system: 'phone', value: '+1 555 0100', use: 'home' }],
  },
  Practitioner: {
    resourceType: 'Practitioner',
    identifier: [{ system: 'http://hl7.org/fhir/sid/us-npi', value: '1234567893' }],
    name: [{ family: 'Carter', given: ['Sam'], prefix: ['Dr.'] }],
  },
  Organization: {
    resourceType: 'Organization',
    name: 'Example General Hospital',
    type: [
      {
        coding: [
          { system: 'http://terminology.hl7.org/CodeSystem/organization-type', code: 'prov' },
        ],
      },
    ],
  },
  Encounter: {
    resourceType: 'Encounter',
    status: 'finished',
    class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' },
    subject: { reference: 'Patient/example' },
    period: { start: '2026-03-01T09:00:00Z', end: '2026-03-01T09:30:00Z' },
  },
  Observation: {
    resourceType: 'Observation',
    status: 'final',
    category: [
      {
        coding: [
          {
            system: 'http://terminology.hl7.org/CodeSystem/observation-category',
            code: 'laboratory',
          },
        ],
      },
    ],
    code: { coding: [{ system: 'http://loinc.org', code: '2345-7', display: 'Glucose' }] },
    subject: { reference: 'Patient/example' },
    effectiveDateTime: '2026-03-01T09:15:00Z',
    valueQuantity: {
      value: 5.4,
      unit: 'mmol/L',
      system: 'http://unitsofmeasure.org',
      code: 'mmol/L',
    },
  },
  Condition: {
    resourceType: 'Condition',
    clinicalStatus: {
      coding: [
        { system: 'http://terminology.hl7.org/CodeSystem/condition-clinical', code: 'active' },
      ],
    },
    code: { coding: [{ system: 'http://snomed.info/sct', code: '44054006' }] },
    subject: { reference: 'Patient/example' },
  },
  AllergyIntolerance: {
    resourceType: 'AllergyIntolerance',
    clinicalStatus: {
      coding: [
        {
          system: 'http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical',
          code: 'active',
        },
      ],
    },
    code: { coding: [{ system: 'http://snomed.info/sct', code: '91936005' }] },
    patient: { reference: 'Patient/example' },
  },
  MedicationRequest: {
    resourceType: 'MedicationRequest',
    status: 'active',
    intent: 'order',
    medicationCodeableConcept: {
      coding: [{ system: 'http://www.nlm.nih.gov/research/umls/rxnorm', code: '860975' }],
    },
    subject: { reference: 'Patient/example' },
  },
  Immunization: {
    resourceType: 'Immunization',
    status: 'completed',
    vaccineCode: { coding: [{ system: 'http://hl7.org/fhir/sid/cvx', code: '140' }] },
    patient: { reference: 'Patient/example' },
    occurrenceDateTime: '2026-01-15',
  },
  DiagnosticReport: {
    resourceType: 'DiagnosticReport',
    status: 'final',
    code: { coding: [{ system: 'http://loinc.org', code: '24323-8' }] },
    subject: { reference: 'Patient/example' },
  },
  Procedure: {
    resourceType: 'Procedure',
    status: 'completed',
    code: { coding: [{ system: 'http://snomed.info/sct', code: '80146002' }] },
    subject: { reference: 'Patient/example' },
  },
};

/**
 * Swagger UI's PATCH examples for a type: they set `language`, the one element every resource
 * has that no example sets, so that they apply to any stored resource of any type.
 */
export function patchExamples(type: string): Record<string, { value: unknown }> {
  return {
    jsonPatch: { value: [{ op: 'add', path: '/language', value: 'en' }] },
    fhirPathPatch: {
      value: {
        resourceType: 'Parameters',
        parameter: [
          {
            name: 'operation',
            part: [
              { name: 'type', valueCode: 'add' },
              { name: 'path', valueString: type },
              { name: 'name', valueString: 'language' },
              { name: 'value', valueCode: 'en' },
            ],
          },
        ],
      },
    },
  };
}
