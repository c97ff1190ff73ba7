import type { FhirResource } from './fhir-types.js';

/**
 * Where a resource breaks FHIR's JSON rule that a property is absent or has a value: no empty
 * string and no empty array (json.html). The StructureDefinition validator lets both through,
 * and `"gender": ""` would store a code from no value set. Returns the first such element's
 * path (`Patient.identifier[0].system`), or undefined.
 */
export function emptyValuePath(resource: FhirResource): string | undefined {
  const found = find(resource);
  if (!found) {
    return undefined;
  }
  let path = resource.resourceType;
  for (const step of found) path += typeof step === 'number' ? `[${step}]` : `.${step}`;
  return path;
}

/** The steps to the first empty value, built on the way back so that a valid resource allocates none. */
function find(value: unknown): (string | number)[] | undefined {
  if (value === '') {
    return [];
  }
  if (Array.isArray(value)) {
    if (value.length === 0) return [];
    for (let i = 0; i < value.length; i++) {
      const found = find(value[i]);
      if (found) {
        found.unshift(i);
        return found;
      }
    }
  } else if (typeof value === 'object' && value !== null) {
    const object = value as Record<string, unknown>;
    for (const key in object) {
      const found = find(object[key]);
      if (found) {
        found.unshift(key);
        return found;
      }
    }
  }
  return undefined;
}
