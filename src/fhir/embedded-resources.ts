import type { Issue } from '../common/errors/app-error.js';
import type { FhirResource } from './fhir-types.js';

/** R4's id data type (datatypes.html#id), which a contained resource's id is too. */
const FHIR_ID = /^[A-Za-z0-9.-]{1,64}$/;

/**
 * The first resource held inside another (`contained`, a Bundle entry's `resource`, a
 * Parameters value's `resource`, at any depth: R4's elements of type Resource) that is not a
 * resource of a concrete R4 type, or whose id is not an R4 id. @medplum/core's validator takes
 * such an element's type from its own `resourceType`, so a HumanName, an abstract
 * DomainResource or an object without a type was validated as that and stored (until
 * 2026-12-07); it does not check an id's pattern, which the service does for the resource
 * itself only (a contained `c 1` was stored, and `#c 1` referred to it).
 */
export function embeddedResourceIssue(
  resource: FhirResource,
  isResourceType: (type: string) => boolean,
): Issue | undefined {
  return inResource(resource, resource.resourceType, isResourceType);
}

function inResource(
  resource: Record<string, unknown>,
  path: string,
  isResourceType: (type: string) => boolean,
): Issue | undefined {
  const contained = resource['contained'];
  if (Array.isArray(contained)) {
    for (let i = 0; i < contained.length; i++) {
      const found = held(contained[i], `${path}.contained[${i}]`, isResourceType);
      if (found) return found;
    }
  }
  const entries = resource['entry'];
  if (resource['resourceType'] === 'Bundle' && Array.isArray(entries)) {
    for (let i = 0; i < entries.length; i++) {
      const entry: unknown = entries[i];
      if (!isObject(entry) || entry['resource'] === undefined) continue;
      const found = held(entry['resource'], `${path}.entry[${i}].resource`, isResourceType);
      if (found) return found;
    }
  }
  if (resource['resourceType'] === 'Parameters') {
    return inParameters(resource['parameter'], `${path}.parameter`, isResourceType);
  }
  return undefined;
}

/** A Parameters' values, and their parts (which are parameters too, to any depth). */
function inParameters(
  parameters: unknown,
  path: string,
  isResourceType: (type: string) => boolean,
): Issue | undefined {
  if (!Array.isArray(parameters)) return undefined;
  for (let i = 0; i < parameters.length; i++) {
    const parameter: unknown = parameters[i];
    if (!isObject(parameter)) continue;
    const found =
      (parameter['resource'] === undefined
        ? undefined
        : held(parameter['resource'], `${path}[${i}].resource`, isResourceType)) ??
      inParameters(parameter['part'], `${path}[${i}].part`, isResourceType);
    if (found) return found;
  }
  return undefined;
}

function held(
  value: unknown,
  path: string,
  isResourceType: (type: string) => boolean,
): Issue | undefined {
  // What is not an object at all is the validator's to report, with the element's type.
  if (!isObject(value)) return undefined;
  const type = value['resourceType'];
  if (typeof type !== 'string' || !isResourceType(type)) {
    // The type is the client's text: named only when it is a plain word.
    const named = typeof type === 'string' && /^[A-Za-z]{1,64}$/.test(type) ? ` (${type})` : '';
    return issue(
      `${path} is not a resource${named}: a resource held in another has the resourceType of a concrete R4 resource type`,
      path,
    );
  }
  const id = value['id'];
  if (typeof id === 'string' && !FHIR_ID.test(id)) {
    return issue(`${path}.id is not an id: 1 to 64 letters, digits, "-" or "."`, `${path}.id`);
  }
  return inResource(value, path, isResourceType);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function issue(diagnostics: string, expression: string): Issue {
  return { severity: 'error', code: 'structure', diagnostics, expression: [expression] };
}
