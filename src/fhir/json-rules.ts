import { isPrototypeKey } from '../common/http/json-scan.js';
import type { FhirResource } from './fhir-types.js';

/** A rule of FHIR JSON the StructureDefinition validator does not enforce, and where it broke. */
export interface JsonRuleBreak {
  /** The element: `Patient.identifier[0].system`. */
  path: string;
  /**
   * `empty`: an empty string, array or object, where FHIR JSON has a value or no property
   * (json.html; ele-1); the validator lets them through, `"gender": ""` would store a code from
   * no value set, and `"text": {}` a narrative without its required status and div.
   * `primitive-extension`: an `_x` property that is not an object beside a single primitive
   * `x`, or an array of objects and nulls as long as a repeating one's (json.html); the
   * validator failed on some (a 500) and stored others (`_name` beside a name).
   * `prototype-key`: a key that every plain object has (`toString`, `constructor`): the
   * validator looks element names up on plain objects, finds those, and passes the element.
   * `id-only`: an element of an id and nothing else (`"maritalStatus": {"id": "m"}`, or
   * `_birthDate` so without a birthDate), which has no value and no children (ele-1); the
   * validator skips ele-1, and such elements were stored until 2026-12-07.
   */
  rule: 'empty' | 'prototype-key' | 'primitive-extension' | 'id-only';
}

/**
 * The first place where a resource breaks one of those rules, or undefined. One walk for both:
 * the HTTP parser refuses prototype keys in request bodies already, but a resource also comes
 * from a patch, a Bundle's JSON Patch, an import file or an HL7 message.
 */
export function jsonRuleBreak(resource: FhirResource): JsonRuleBreak | undefined {
  const found = find(resource);
  if (!found) {
    return undefined;
  }
  let path = resource.resourceType;
  for (const step of found.steps) path += typeof step === 'number' ? `[${step}]` : `.${step}`;
  return { path, rule: found.rule };
}

interface Found {
  /** Built on the way back, so that a valid resource allocates none. */
  steps: (string | number)[];
  rule: JsonRuleBreak['rule'];
}

/** `valued`: the value is a primitive's extension (`_x`) beside a value, so an id is enough. */
function find(value: unknown, valued = false): Found | undefined {
  if (value === '') {
    return { steps: [], rule: 'empty' };
  }
  if (Array.isArray(value)) {
    if (value.length === 0) return { steps: [], rule: 'empty' };
    for (let i = 0; i < value.length; i++) {
      const found = find(value[i]);
      if (found) {
        found.steps.unshift(i);
        return found;
      }
    }
  } else if (typeof value === 'object' && value !== null) {
    const object = value as Record<string, unknown>;
    let empty = true;
    for (const key in object) {
      empty = false;
      if (isPrototypeKey(key)) {
        return { steps: [key], rule: 'prototype-key' };
      }
      const name = key.slice(1);
      const primitive = Object.hasOwn(object, name) ? object[name] : undefined;
      if (key.startsWith('_') && !isPrimitiveExtension(object[key], primitive)) {
        return { steps: [key], rule: 'primitive-extension' };
      }
      const found = key.startsWith('_')
        ? findInExtension(object[key], primitive)
        : find(object[key]);
      if (found) {
        found.steps.unshift(key);
        return found;
      }
    }
    if (empty) return { steps: [], rule: 'empty' };
    if (!valued && 'id' in object && Object.keys(object).length === 1) {
      return { steps: [], rule: 'id-only' };
    }
  }
  return undefined;
}

/** `find` on a primitive's extension (of the right shape), knowing which values are there. */
function findInExtension(extension: unknown, primitive: unknown): Found | undefined {
  if (!Array.isArray(extension)) {
    return find(extension, primitive !== undefined && primitive !== null);
  }
  for (let i = 0; i < extension.length; i++) {
    if (extension[i] === null) continue;
    const value: unknown = Array.isArray(primitive) ? primitive[i] : undefined;
    const found = find(extension[i], value !== undefined && value !== null);
    if (found) {
      found.steps.unshift(i);
      return found;
    }
  }
  return undefined;
}

/**
 * Whether `_x` has the shape json.html gives it beside `x`: an object for a single primitive, an
 * array of objects and nulls, one per value, for a repeating one (or, without values, at least
 * one object). Whether an absent `x` is a primitive element at all takes its definition, which
 * the validator has; an `x` that is there shows it.
 */
function isPrimitiveExtension(extension: unknown, primitive: unknown): boolean {
  const isObject = (item: unknown) =>
    typeof item === 'object' && item !== null && !Array.isArray(item);
  if (Array.isArray(extension)) {
    if (!extension.every((item) => item === null || isObject(item))) return false;
    if (primitive === undefined) return extension.some(isObject);
    return (
      Array.isArray(primitive) &&
      primitive.length === extension.length &&
      primitive.every((item) => item === null || typeof item !== 'object')
    );
  }
  if (!isObject(extension)) return false;
  return primitive === undefined || (primitive !== null && typeof primitive !== 'object');
}
