import type { Issue } from '../common/errors/app-error.js';
import type { FhirResource } from './fhir-types.js';

/**
 * R4's rules for contained resources and references within a resource, which @medplum/core's
 * validator leaves out (it skips dom-3 by design) and which a stored resource broke until
 * 2026-12-06:
 * - a contained resource has an id, unique among them (references.html#contained);
 * - a local reference (`#o1`) names one of them (ref-1), and each is referred to from the
 *   resource, or refers to it (`#`) itself (dom-3);
 * - a reference's `type`, when given with a relative or a local reference, is the type it
 *   names (R4's Reference.type: the reference SHALL resolve to a resource of that type; for a
 *   local one, until 2026-12-07, any type was stored).
 * A Bundle and a Parameters hold whole resources, whose references are theirs: they are left
 * to what reads them.
 */
export function localReferenceIssues(resource: FhirResource): Issue[] {
  if (resource.resourceType === 'Bundle' || resource.resourceType === 'Parameters') return [];
  const type = resource.resourceType;
  const issues: Issue[] = [];
  const contained = Array.isArray(resource['contained'])
    ? (resource['contained'] as Record<string, unknown>[])
    : [];
  const ids = new Map<string, number>();
  contained.forEach((entry, i) => {
    const id = typeof entry?.['id'] === 'string' ? entry['id'] : undefined;
    if (!id) {
      issues.push(
        issue(
          `A contained resource needs an id, which its references name`,
          `${type}.contained[${i}]`,
        ),
      );
    } else if (ids.has(id)) {
      issues.push(
        issue(`Two contained resources have the id ${printable(id)}`, `${type}.contained[${i}].id`),
      );
    } else {
      ids.set(id, i);
    }
  });
  // A local reference's type is that of the contained resource it names (`#m1`, a Medication).
  const containedType = (value: string): string | undefined => {
    const at = value.startsWith('#') ? ids.get(value.slice(1)) : undefined;
    const type = at === undefined ? undefined : contained[at]?.['resourceType'];
    return typeof type === 'string' ? type : undefined;
  };
  const named = new Set<string>();
  const refersToContainer = new Set<number>();
  walk(
    resource,
    (value, inContained) => {
      if (value !== '#') named.add(value.slice(1));
      else if (inContained !== undefined) refersToContainer.add(inContained);
    },
    (value, stated, where) => {
      if (value.startsWith('#') && value.length > 1 && !ids.has(value.slice(1))) {
        issues.push(
          issue(`The local reference ${printable(value)} names no contained resource`, where()),
        );
      }
      const literal = RELATIVE.exec(value)?.[1] ?? containedType(value);
      if (literal && stated !== undefined && stated !== literal) {
        issues.push(
          issue(
            `The reference names a ${literal}, and its type says ${printable(stated)}`,
            where(),
          ),
        );
      }
    },
  );
  for (const [id, i] of ids) {
    if (!named.has(id) && !refersToContainer.has(i)) {
      issues.push(
        issue(
          `The contained resource ${printable(id)} is referred to from nowhere in the resource (dom-3): contain only what the resource refers to`,
          `${type}.contained[${i}]`,
        ),
      );
    }
  }
  return issues;
}

/**
 * Walks the resource: `onLocal` sees each string that starts with `#` (a local reference, or a
 * canonical or uri naming a contained resource), with the index of the contained resource it
 * is in; `onReference` each Reference's `reference`, with its `type` and, built only when
 * asked (an issue is rare, and building every element's path cost more than the walk), its
 * FHIRPath-like path.
 */
function walk(
  resource: FhirResource,
  onLocal: (value: string, inContained: number | undefined) => void,
  onReference: (value: string, stated: string | undefined, where: () => string) => void,
): void {
  const steps: (string | number)[] = [];
  const where = (): string =>
    steps.reduce<string>(
      (path, step) => (typeof step === 'number' ? `${path}[${step}]` : `${path}.${step}`),
      resource.resourceType,
    ) + '.reference';
  const visit = (value: unknown, inContained: number | undefined): void => {
    if (typeof value === 'string') {
      if (value.startsWith('#')) onLocal(value, inContained);
    } else if (Array.isArray(value)) {
      for (let i = 0; i < value.length; i++) {
        steps.push(i);
        visit(value[i], inContained);
        steps.pop();
      }
    } else if (typeof value === 'object' && value !== null) {
      const object = value as Record<string, unknown>;
      const reference = object['reference'];
      if (typeof reference === 'string') {
        const stated = typeof object['type'] === 'string' ? object['type'] : undefined;
        onReference(reference, stated, where);
      }
      for (const key in object) {
        const item = object[key];
        steps.push(key);
        if (key === 'contained' && inContained === undefined && Array.isArray(item)) {
          for (let i = 0; i < item.length; i++) {
            steps.push(i);
            visit(item[i], i);
            steps.pop();
          }
        } else {
          visit(item, inContained);
        }
        steps.pop();
      }
    }
  };
  visit(resource, undefined);
}

/**
 * The first `urn:uuid:` reference of a resource about to be stored, if any: it names an entry
 * of the Bundle it came in, which has resolved it by then; left in a resource created on its
 * own, it names nothing and can never resolve (it was stored until 2026-12-06). Checked when a
 * resource is written rather than when validated: validation also reads resources as they
 * stand in a Bundle (the unit test of every Synthea entry), where such a reference is right.
 */
export function unresolvedBundleReference(resource: FhirResource): string | undefined {
  if (resource.resourceType === 'Bundle' || resource.resourceType === 'Parameters') return;
  let found: string | undefined;
  walk(
    resource,
    () => undefined,
    (value, _stated, where) => {
      if (!found && value.startsWith('urn:uuid:')) found = where();
    },
  );
  return found;
}

/** A relative literal reference (`Patient/123`, with or without a version): its type. */
const RELATIVE = /^([A-Z][A-Za-z]{1,63})\/[A-Za-z0-9.-]{1,64}(\/_history\/[A-Za-z0-9.-]{1,64})?$/;

function issue(diagnostics: string, expression: string): Issue {
  return { severity: 'error', code: 'invalid', diagnostics, expression: [expression] };
}

/** An id or reference as the client wrote it, when it is plain enough to echo. */
function printable(value: string): string {
  return /^#?[A-Za-z0-9.-]{1,64}$/.test(value) ? value : '(not shown)';
}
