import { isPrototypeKey } from '../common/http/json-scan.js';
import type { FhirResource } from './fhir-types.js';

/** A rule of FHIR JSON the StructureDefinition validator does not enforce, and where it broke. */
export interface JsonRuleBreak {
  /** The element: `Patient.identifier[0].system`. */
  path: string;
  /**
   * `empty`: an empty string or array, where FHIR JSON has a value or no property (json.html);
   * the validator lets both through, and `"gender": ""` would store a code from no value set.
   * `prototype-key`: a key that every plain object has (`toString`, `constructor`): the
   * validator looks element names up on plain objects, finds those, and passes the element.
   */
  rule: 'empty' | 'prototype-key';
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

function find(value: unknown): Found | undefined {
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
    for (const key in object) {
      if (isPrototypeKey(key)) {
        return { steps: [key], rule: 'prototype-key' };
      }
      const found = find(object[key]);
      if (found) {
        found.steps.unshift(key);
        return found;
      }
    }
  }
  return undefined;
}
