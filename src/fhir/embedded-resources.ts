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
  // The walk yields a resource before those it holds: one refused here is not walked into.
  for (const { resource: value, path } of heldResources(resource)) {
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
  }
  return undefined;
}

/** A resource held in another, where it is, and the resource whose element holds it. */
export interface HeldResource {
  resource: Record<string, unknown>;
  /** `Bundle.entry[0].resource`. */
  path: string;
  holder: Record<string, unknown>;
  /** Whether it is in the holder's `contained` (rather than a Bundle entry or a parameter). */
  contained: boolean;
}

/**
 * The resources held in `resource` (contained, a Bundle's entries, a Parameters' values and
 * their parts), at any depth, each before those it holds. What is not an object at all is the
 * validator's to report, with the element's type.
 */
export function* heldResources(
  resource: Record<string, unknown>,
  path = String(resource['resourceType']),
): Generator<HeldResource> {
  const contained = resource['contained'];
  if (Array.isArray(contained)) {
    for (let i = 0; i < contained.length; i++) {
      yield* held(contained[i], `${path}.contained[${i}]`, resource, true);
    }
  }
  const entries = resource['entry'];
  if (resource['resourceType'] === 'Bundle' && Array.isArray(entries)) {
    for (let i = 0; i < entries.length; i++) {
      const entry: unknown = entries[i];
      if (!isObject(entry)) continue;
      yield* held(entry['resource'], `${path}.entry[${i}].resource`, resource, false);
    }
  }
  if (resource['resourceType'] === 'Parameters') {
    yield* inParameters(resource['parameter'], `${path}.parameter`, resource);
  }
}

/** A Parameters' values, and their parts (which are parameters too, to any depth). */
function* inParameters(
  parameters: unknown,
  path: string,
  holder: Record<string, unknown>,
): Generator<HeldResource> {
  if (!Array.isArray(parameters)) return;
  for (let i = 0; i < parameters.length; i++) {
    const parameter: unknown = parameters[i];
    if (!isObject(parameter)) continue;
    yield* held(parameter['resource'], `${path}[${i}].resource`, holder, false);
    yield* inParameters(parameter['part'], `${path}[${i}].part`, holder);
  }
}

function* held(
  value: unknown,
  path: string,
  holder: Record<string, unknown>,
  contained: boolean,
): Generator<HeldResource> {
  if (!isObject(value)) return;
  yield { resource: value, path, holder, contained };
  yield* heldResources(value, path);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function issue(diagnostics: string, expression: string): Issue {
  return { severity: 'error', code: 'structure', diagnostics, expression: [expression] };
}
