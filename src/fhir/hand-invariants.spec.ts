import { FhirDefinitions } from './fhir-definitions.js';
import { validationIssues } from '../../test/support/validation.js';

const LOINC = 'http://loinc.org';
const code = (value: string, display?: string): Record<string, unknown> => ({
  coding: [{ system: LOINC, code: value, ...(display ? { display } : {}) }],
});
const ABSENT = {
  extension: [
    { url: 'http://hl7.org/fhir/StructureDefinition/data-absent-reason', valueCode: 'unknown' },
  ],
};
const onsetAge = (age: Record<string, unknown>): Record<string, unknown> => ({
  resourceType: 'Condition',
  subject: { reference: 'Patient/p' },
  onsetAge: { unit: 'a', system: 'http://unitsofmeasure.org', code: 'a', ...age },
});
const MMHG = { value: 120, unit: 'mmHg', system: 'http://unitsofmeasure.org', code: 'mm[Hg]' };

function observation(extra: Record<string, unknown>): Record<string, unknown> {
  return { resourceType: 'Observation', status: 'final', code: code('85354-9'), ...extra };
}

function questionnaire(item: unknown[]): Record<string, unknown> {
  return { resourceType: 'Questionnaire', status: 'active', item };
}

const question = (linkId: string, item?: unknown[]): Record<string, unknown> => ({
  linkId,
  text: linkId,
  ...(item ? { type: 'group', item } : { type: 'string' }),
});

function codeSystem(concept: unknown[]): Record<string, unknown> {
  return { resourceType: 'CodeSystem', status: 'active', content: 'complete', concept };
}

function dispense(whenPrepared: string, whenHandedOver: string): Record<string, unknown> {
  return {
    resourceType: 'MedicationDispense',
    status: 'completed',
    medicationCodeableConcept: { text: 'Amoxicillin' },
    whenPrepared,
    whenHandedOver,
  };
}

function careTeam(member: string): Record<string, unknown> {
  return {
    resourceType: 'CareTeam',
    participant: [{ member: { reference: member }, onBehalfOf: { reference: 'Organization/o' } }],
  };
}

function documentBundle(extra: Record<string, unknown>): Record<string, unknown> {
  return {
    resourceType: 'Bundle',
    type: 'document',
    identifier: {
      system: 'urn:ietf:rfc:3986',
      value: 'urn:uuid:5b9a2f3e-8a3c-4e0b-9f7a-1d2c3b4a5e6f',
    },
    entry: [
      {
        fullUrl: 'urn:uuid:0c3151bd-1cbf-4d64-b04d-cd9187a4c6e0',
        resource: {
          resourceType: 'Composition',
          status: 'final',
          type: { text: 'Discharge summary' },
          date: '2024-03-01',
          author: [{ display: 'Dr. A' }],
          title: 'Discharge summary',
        },
      },
    ],
    ...extra,
  };
}

/** A profile whose differential's first (root) element carries `root`. */
function profile(root: Record<string, unknown>): Record<string, unknown> {
  return {
    resourceType: 'StructureDefinition',
    url: 'http://example.org/fhir/StructureDefinition/inpatient',
    name: 'Inpatient',
    status: 'draft',
    kind: 'resource',
    abstract: false,
    type: 'Patient',
    baseDefinition: 'http://hl7.org/fhir/StructureDefinition/Patient',
    derivation: 'constraint',
    differential: {
      element: [
        { id: 'Patient', path: 'Patient', ...root },
        { id: 'Patient.name', path: 'Patient.name', label: 'Name', min: 1 },
      ],
    },
  };
}

/** An Observation counting with `count` (a Count) in an extension. */
function counted(count: Record<string, unknown>): Record<string, unknown> {
  return observation({
    extension: [
      {
        url: 'http://example.org/fhir/StructureDefinition/count',
        valueCount: { system: 'http://unitsofmeasure.org', code: '1', ...count },
      },
    ],
  });
}

describe('the invariants @medplum/core evaluates wrongly, checked by hand', () => {
  const definitions = new FhirDefinitions();

  it.each<[string, Record<string, unknown>, string, string]>([
    [
      'an Observation with a value and a component of its own code (obs-7)',
      observation({
        valueString: 'x',
        component: [{ code: code('85354-9'), valueQuantity: MMHG }],
      }),
      'obs-7',
      'Observation.component[0].code',
    ],
    [
      'a Questionnaire with one linkId twice at the top (que-2)',
      questionnaire([question('1'), question('1')]),
      'que-2',
      'Questionnaire.item[1]',
    ],
    [
      'a Questionnaire with a group and its question of one linkId (que-2)',
      questionnaire([question('1', [question('1')])]),
      'que-2',
      'Questionnaire.item[0].item[0]',
    ],
    [
      'a Questionnaire with one linkId in two groups (que-2)',
      questionnaire([question('g1', [question('x')]), question('g2', [question('x')])]),
      'que-2',
      'Questionnaire.item[1].item[0]',
    ],
    [
      'a CodeSystem with a code under itself (csd-1)',
      codeSystem([{ code: 'a', concept: [{ code: 'a' }] }]),
      'csd-1',
      'CodeSystem.concept[0].concept[0]',
    ],
    [
      'a CodeSystem with a nested code again at the top (csd-1)',
      codeSystem([
        { code: 'a', concept: [{ code: 'b', concept: [{ code: 'c' }] }] },
        { code: 'c' },
      ]),
      'csd-1',
      'CodeSystem.concept[1]',
    ],
    [
      'a dispense handed over before it was prepared, in another zone (mdd-1)',
      dispense('2024-03-01T06:00:00Z', '2024-03-01T10:00:00+05:00'),
      'mdd-1',
      'MedicationDispense.whenHandedOver',
    ],
    [
      'a dispense handed over the day before it was prepared (mdd-1)',
      dispense('2024-03-02', '2024-03-01'),
      'mdd-1',
      'MedicationDispense.whenHandedOver',
    ],
    [
      'a patient member on behalf of an organization, by absolute URL (ctm-1)',
      careTeam('http://example.org/fhir/Patient/p1'),
      'ctm-1',
      'CareTeam.participant[0]',
    ],
    [
      'a patient member on behalf of an organization (ctm-1)',
      careTeam('Patient/p1'),
      'ctm-1',
      'CareTeam.participant[0]',
    ],
    [
      'a Range from 5 mg to 1 mg (rng-2)',
      observation({
        valueRange: { low: { value: 5, unit: 'mg' }, high: { value: 1, unit: 'mg' } },
      }),
      'rng-2',
      'Observation.value[x]',
    ],
    [
      'a Range from 5 to 1 of one UCUM code, with units written differently (rng-2)',
      observation({
        valueRange: {
          low: { value: 5, unit: 'milligram', system: 'http://unitsofmeasure.org', code: 'mg' },
          high: { value: 1, unit: 'mg', system: 'http://unitsofmeasure.org', code: 'mg' },
        },
      }),
      'rng-2',
      'Observation.value[x]',
    ],
    [
      'an Age of -1 whose value has an extension too (age-1)',
      onsetAge({ value: -1, _value: ABSENT }),
      'age-1',
      'Condition.onset[x]',
    ],
    [
      'a contained Observation with a component of its own code (obs-7)',
      {
        resourceType: 'Bundle',
        type: 'collection',
        entry: [
          {
            resource: observation({
              valueString: 'x',
              component: [{ code: code('85354-9'), valueQuantity: MMHG }],
            }),
          },
        ],
      },
      'obs-7',
      'Bundle.entry[0].resource.component[0].code',
    ],
    [
      'a document Bundle whose timestamp is absent, by extension (bdl-10)',
      documentBundle({ _timestamp: ABSENT }),
      'bdl-10',
      'Bundle',
    ],
    [
      'a profile with a label on its root element (sdf-9)',
      profile({ label: 'Inpatient' }),
      'sdf-9',
      'StructureDefinition.differential.element[0]',
    ],
    [
      'a profile with a code on its root element (sdf-9)',
      profile({ code: [{ system: LOINC, code: '85354-9' }] }),
      'sdf-9',
      'StructureDefinition.differential.element[0]',
    ],
    [
      'a profile with requirements on its root element (sdf-9)',
      profile({ requirements: 'Inpatients only' }),
      'sdf-9',
      'StructureDefinition.differential.element[0]',
    ],
    [
      'a Questionnaire contained in its response, one linkId twice (que-2)',
      {
        resourceType: 'QuestionnaireResponse',
        status: 'completed',
        questionnaire: '#q',
        contained: [{ ...questionnaire([question('1'), question('1')]), id: 'q' }],
      },
      'que-2',
      'QuestionnaireResponse.contained[0].item[1]',
    ],
    [
      'a CodeSystem in a Bundle entry, a code under itself (csd-1)',
      {
        resourceType: 'Bundle',
        type: 'collection',
        entry: [{ resource: codeSystem([{ code: 'a', concept: [{ code: 'a' }] }]) }],
      },
      'csd-1',
      'Bundle.entry[0].resource.concept[0].concept[0]',
    ],
    [
      // JavaScript writes 0.0000001 as 1e-7, in which R4's test for a "." finds none.
      'a Count of 0.0000001 (cnt-3: a whole number)',
      counted({ value: 0.0000001 }),
      'cnt-3',
      'Observation.extension[0].value[x]',
    ],
    [
      'a Count of 0.00000015 (cnt-3: a whole number)',
      counted({ value: 0.00000015 }),
      'cnt-3',
      'Observation.extension[0].value[x]',
    ],
    [
      'an Age of -0.00000015 (age-1)',
      onsetAge({ value: -0.00000015 }),
      'age-1',
      'Condition.onset[x]',
    ],
  ])('refuses %s', (_name, resource, key, expression) => {
    expect(validationIssues(definitions, resource)).toEqual([
      expect.objectContaining({
        severity: 'error',
        diagnostics: expect.stringContaining(`Constraint ${key} not met`) as unknown,
        expression: [expression],
      }),
    ]);
  });

  it.each<[string, Record<string, unknown>]>([
    [
      'a blood pressure panel: components of other codes (obs-7)',
      observation({ component: [{ code: code('8480-6'), valueQuantity: MMHG }] }),
    ],
    [
      'a component of the Observation code when the Observation has no value (obs-7)',
      observation({ component: [{ code: code('85354-9'), valueQuantity: MMHG }] }),
    ],
    [
      // FHIRPath's intersect compares Codings whole (=): a display of its own makes another one.
      'a component whose Coding differs by its display (obs-7)',
      observation({
        valueString: 'x',
        component: [{ code: code('85354-9', 'Blood pressure'), valueQuantity: MMHG }],
      }),
    ],
    [
      'a Questionnaire of distinct linkIds at every depth (que-2)',
      questionnaire([question('1', [question('1.1'), question('1.2', [question('1.2.1')])])]),
    ],
    [
      'a CodeSystem of distinct codes at every depth (csd-1)',
      codeSystem([{ code: 'a', concept: [{ code: 'b' }] }, { code: 'c' }]),
    ],
    [
      'a dispense handed over after it was prepared, in another zone (mdd-1)',
      dispense('2024-03-01T10:00:00+05:00', '2024-03-01T06:00:00Z'),
    ],
    [
      'a dispense prepared and handed over on one day (mdd-1)',
      dispense('2024-03-01', '2024-03-01T10:00:00Z'),
    ],
    [
      'a practitioner member on behalf of an organization, by absolute URL (ctm-1)',
      careTeam('http://example.org/fhir/Practitioner/p1/_history/2'),
    ],
    ['a practitioner member on behalf of an organization (ctm-1)', careTeam('Practitioner/p1')],
    [
      'a member by urn:uuid, whose type the reference does not say (ctm-1)',
      careTeam('urn:uuid:0c3151bd-1cbf-4d64-b04d-cd9187a4c6e0'),
    ],
    [
      'a Range from 500 mg to 1 g, whose units differ (rng-2 compares values of one unit only)',
      observation({
        valueRange: {
          low: { value: 500, unit: 'mg', system: 'http://unitsofmeasure.org', code: 'mg' },
          high: { value: 1, unit: 'g', system: 'http://unitsofmeasure.org', code: 'g' },
        },
      }),
    ],
    [
      'a Range from 500 to 1 in units without codes (rng-2)',
      observation({
        valueRange: { low: { value: 500, unit: 'mg' }, high: { value: 1, unit: 'g' } },
      }),
    ],
    [
      'a Range from 1 mg to 5 mg (rng-2)',
      observation({
        valueRange: { low: { value: 1, unit: 'mg' }, high: { value: 5, unit: 'mg' } },
      }),
    ],
    ['an Age whose value is absent, by extension (age-1)', onsetAge({ _value: ABSENT })],
    [
      'an Age of 5 whose value has an extension too (age-1)',
      onsetAge({ value: 5, _value: ABSENT }),
    ],
    [
      'a document Bundle with a timestamp (bdl-10)',
      documentBundle({ timestamp: '2024-03-01T10:00:00Z' }),
    ],
    [
      'a collection Bundle whose timestamp is absent (bdl-10)',
      { resourceType: 'Bundle', type: 'collection', _timestamp: ABSENT },
    ],
    [
      'a profile with a label on an element below the root (sdf-9)',
      profile({ short: 'Inpatient' }),
    ],
    ['a Count of 2 (cnt-3)', counted({ value: 2 })],
    ['a Count of 10^21, which JavaScript writes 1e+21 (cnt-3)', counted({ value: 1e21 })],
    ['a Count whose value is absent, by extension (cnt-3)', counted({ _value: ABSENT })],
  ])('takes %s', (_name, resource) => {
    expect(validationIssues(definitions, resource)).toEqual([]);
  });
});
