import type { Issue } from '../common/errors/app-error.js';
import type { FhirResource } from './fhir-types.js';

/**
 * R4's rules for contained resources and references within a resource, which @medplum/core's
 * validator leaves out (it skips dom-3 by design) and which a stored resource broke until
 * 2026-12-06:
 * - a contained resource has an id, unique among them (references.html#contained);
 * - a local reference (`#o1`) names one of them (ref-1), and each is referred to from the
 *   resource, or refers to it (`#`) itself (dom-3);
 * - a reference's `type`, when given with a relative reference, is the type it names (R4's
 *   Reference.type: the reference SHALL resolve to a resource of that type).
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
  const named = new Set<string>();
  const refersToContainer = new Set<number>();
  walk(
    resource,
    type,
    undefined,
    (value, path, inContained) => {
      if (value === '#') {
        if (inContained !== undefined) refersToContainer.add(inContained);
        return;
      }
      if (value.startsWith('#')) {
        named.add(value.slice(1));
        return;
      }
    },
    (value, path, stated) => {
      if (value.startsWith('#') && value.length > 1 && !ids.has(value.slice(1))) {
        issues.push(
          issue(`The local reference ${printable(value)} names no contained resource`, path),
        );
      }
      const literal = RELATIVE.exec(value)?.[1];
      if (literal && stated !== undefined && stated !== literal) {
        issues.push(
          issue(`The reference names a ${literal}, and its type says ${printable(stated)}`, path),
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
 * Every string of the resource with its FHIRPath-like path, and the index of the contained
 * resource it is in; `onReference` sees each Reference's `reference`, with its `type`.
 */
function walk(
  value: unknown,
  path: string,
  inContained: number | undefined,
  onString: (value: string, path: string, inContained: number | undefined) => void,
  onReference: (value: string, path: string, stated: string | undefined) => void,
): void {
  if (typeof value === 'string') {
    onString(value, path, inContained);
  } else if (Array.isArray(value)) {
    value.forEach((item, i) => walk(item, `${path}[${i}]`, inContained, onString, onReference));
  } else if (typeof value === 'object' && value !== null) {
    const object = value as Record<string, unknown>;
    if (typeof object['reference'] === 'string') {
      const stated = typeof object['type'] === 'string' ? object['type'] : undefined;
      onReference(object['reference'], `${path}.reference`, stated);
    }
    for (const [key, item] of Object.entries(object)) {
      if (key === 'contained' && inContained === undefined && Array.isArray(item)) {
        item.forEach((entry, i) =>
          walk(entry, `${path}.contained[${i}]`, i, onString, onReference),
        );
      } else {
        walk(item, `${path}.${key}`, inContained, onString, onReference);
      }
    }
  }
}

/**
 * The first `urn:uuid:` reference of a resource about to be stored, if any: it names an entry
 * of the Bundle it came in, which has resolved it by then; left in a resource created on its
 * own, it names nothing and can never resolve (it was stored until 2026-12-06). Checked when a
 * resource is written rather than validated: a transaction's entries are validated as sent.
 */
export function unresolvedBundleReference(resource: FhirResource): string | undefined {
  if (resource.resourceType === 'Bundle' || resource.resourceType === 'Parameters') return;
  let found: string | undefined;
  walk(
    resource,
    resource.resourceType,
    undefined,
    () => undefined,
    (value, path) => {
      if (!found && value.startsWith('urn:uuid:')) found = path;
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
