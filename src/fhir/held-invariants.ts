import './websocket-shim.js';
import {
  evalFhirPathTyped,
  getDataType,
  LRUCache,
  toTypedValue,
  type FhirPathAtom,
  type TypedValue,
} from '@medplum/core';
import type { Issue } from '../common/errors/app-error.js';
import { heldResources } from './embedded-resources.js';
import type { FhirResource } from './fhir-types.js';

/**
 * The invariants @medplum/core's validator leaves out (validation.ts): ele-1 and dom-3, which
 * json-rules.ts and local-references.ts check, and org-1, sdf-19.
 */
const SKIPPED = new Set(['ele-1', 'dom-3', 'org-1', 'sdf-19']);

/** The parsed expressions, as the validator keeps its own. */
const PARSED = new LRUCache<FhirPathAtom>(1000);

const UCUM: TypedValue = { type: 'uri', value: 'http://unitsofmeasure.org' };

/**
 * The first invariant each resource held in `resource` breaks (contained, a Bundle entry's, a
 * Parameters value's, at any depth): an Observation with both a value and a dataAbsentReason
 * (obs-6) in a DiagnosticReport's `contained` or a document Bundle. @medplum/core's validator
 * evaluates the invariants on a type's root for the resource it validates only, and walks a
 * held resource's elements without them, so such resources were stored until 2026-12-07.
 * Evaluated with the same engine and variables, after that validator, which has checked the
 * held resources' types and elements; `%rootResource` is a contained resource's container.
 */
export function heldInvariantIssues(resource: FhirResource): Issue[] {
  const issues: Issue[] = [];
  for (const { resource: held, path, holder, contained } of heldResources(resource)) {
    const constraints = getDataType(held['resourceType'] as string).constraints ?? [];
    const typed = toTypedValue(held);
    const variables = {
      '%context': typed,
      '%resource': typed,
      '%rootResource': contained ? toTypedValue(holder) : typed,
      '%ucum': UCUM,
    };
    for (const constraint of constraints) {
      if (constraint.severity !== 'error' || SKIPPED.has(constraint.key)) continue;
      let holds: boolean;
      try {
        const result = evalFhirPathTyped(constraint.expression, [typed], variables, PARSED);
        holds = result.length === 1 && result[0]?.value === true;
      } catch {
        holds = false;
      }
      if (!holds) {
        issues.push({
          severity: 'error',
          code: 'invalid',
          diagnostics: `Constraint ${constraint.key} not met: ${constraint.description}`,
          expression: [path],
        });
        break;
      }
    }
  }
  return issues;
}
