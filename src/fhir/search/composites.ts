import '../websocket-shim.js';
import { evalFhirPathTyped, type TypedValue } from '@medplum/core';
import type { FhirResource } from '../fhir-types.js';
import { plainValues } from './plain-paths.js';
import type { CompositeParam, CompositePart } from './search-definitions.js';

/** An element's values of a composite's first part and of its second. */
interface Pair {
  firsts: unknown[];
  seconds: unknown[];
}

/**
 * The first and second values of each element a composite reads (the resource itself, or
 * each `component`), walked on the JSON when its paths are plain, else by the FHIRPath
 * engine, as the plain parameters are.
 */
export function compositeValues(
  resource: FhirResource,
  typed: TypedValue[],
  composite: CompositeParam,
): Pair[] {
  return plainPairs(resource, composite) ?? enginePairs(typed, composite);
}

function plainPairs(resource: FhirResource, composite: CompositeParam): Pair[] | undefined {
  const { first, second } = composite;
  if (!first.paths || !second.paths) return undefined;
  const pairs: Pair[] = [];
  for (const branch of composite.elements) {
    const elements =
      'self' in branch ? [resource] : branch.paths && plainValues(resource, branch.paths);
    if (!elements) return undefined;
    for (const element of elements) {
      const firsts = plainValues(element as FhirResource, first.paths);
      const seconds = plainValues(element as FhirResource, second.paths);
      if (!firsts || !seconds) return undefined;
      if (firsts.length > 0 && seconds.length > 0) pairs.push({ firsts, seconds });
    }
  }
  return pairs;
}

function enginePairs(typed: TypedValue[], composite: CompositeParam): Pair[] {
  const values = (part: CompositePart, element: TypedValue): unknown[] =>
    evalFhirPathTyped(part.expression, [element]).map((item): unknown => item.value);
  const pairs: Pair[] = [];
  try {
    for (const branch of composite.elements) {
      const elements = 'self' in branch ? typed : evalFhirPathTyped(branch.expression, typed);
      for (const element of elements) {
        const firsts = values(composite.first, element);
        const seconds = values(composite.second, element);
        if (firsts.length > 0 && seconds.length > 0) pairs.push({ firsts, seconds });
      }
    }
  } catch {
    // An expression the engine cannot evaluate on this resource indexes nothing.
    return [];
  }
  return pairs;
}
