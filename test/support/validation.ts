import { AppError } from '../../src/common/errors/app-error.js';
import type { FhirDefinitions } from '../../src/fhir/fhir-definitions.js';
import type { FhirResource } from '../../src/fhir/fhir-types.js';

/** The issues FhirDefinitions.validate finds in a resource: none when it is valid. */
export function validationIssues(
  definitions: FhirDefinitions,
  resource: Record<string, unknown>,
): AppError['issues'] {
  try {
    definitions.validate(resource as FhirResource);
    return [];
  } catch (error) {
    if (error instanceof AppError) return error.issues;
    throw error;
  }
}
