import './websocket-shim.js';
import { getDataType, isPrimitiveType, type InternalTypeSchema } from '@medplum/core';
import type { Issue } from '../common/errors/app-error.js';
import type { FhirResource } from './fhir-types.js';
import { isMalformedRelative } from './literal-reference.js';
import { narrativeProblem } from './narrative.js';
import { periodInOrder } from './period-order.js';

/**
 * The regexes of R4's date, dateTime and instant (datatypes.html, and the `regex` extension of
 * their StructureDefinitions), as written there. @medplum/core checks a laxer dateTime of its own,
 * which takes a time without seconds or zone (`2024-03-01T10`), a zone on a date (`2024-03-01Z`)
 * and a bare sign (`2024-03-01-`): values no search could read, so they were stored unindexed.
 */
export const R4_DATE_REGEXES = {
  date: '([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1]))?)?',
  dateTime:
    '([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1])(T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\\.[0-9]+)?(Z|(\\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00)))?)?)?',
  instant:
    '([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)-(0[1-9]|1[0-2])-(0[1-9]|[1-2][0-9]|3[0-1])T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\\.[0-9]+)?(Z|(\\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00))',
} as const;

type DateType = keyof typeof R4_DATE_REGEXES;

const PATTERNS: Record<DateType, RegExp> = {
  date: new RegExp(`^(?:${R4_DATE_REGEXES.date})$`),
  dateTime: new RegExp(`^(?:${R4_DATE_REGEXES.dateTime})$`),
  instant: new RegExp(`^(?:${R4_DATE_REGEXES.instant})$`),
};

/** What each type takes; the message names the element, never its value (it may be PHI). */
const FORMATS: Record<DateType, string> = {
  date: 'YYYY, YYYY-MM or YYYY-MM-DD, with no time or time zone',
  dateTime:
    'YYYY, YYYY-MM, YYYY-MM-DD, or a time to the second with a time zone ' +
    '(YYYY-MM-DDThh:mm:ss[.fff] then Z or +hh:mm / -hh:mm)',
  instant: 'YYYY-MM-DDThh:mm:ss[.fff] then Z or +hh:mm / -hh:mm',
};

const isDateType = (type: string): type is DateType => type in PATTERNS;

/**
 * The issues of every date, dateTime and instant in a resource that R4's regex refuses, of
 * every Period that ends before it starts, of every relative reference that is not
 * `Type/id[/_history/vid]`, and of every narrative (`text.div`) with what R4's txt-1 and txt-2
 * refuse (a script, an event handler, a `javascript:` URL; src/fhir/narrative.ts), at any depth: contained resources, extensions, and the
 * extensions of primitives included. Runs after
 * @medplum/core's validator (which has refused unknown elements and wrong JSON types), and names
 * elements as it does (`Observation.effective[x]`).
 */
export function dateValueIssues(resource: FhirResource): Issue[] {
  const issues: Issue[] = [];
  walk(resource, getDataType(resource.resourceType), resource.resourceType, issues);
  return issues;
}

type Json = Record<string, unknown>;

const isObject = (value: unknown): value is Json =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * Walks the elements the JSON has, not every element of its type as @medplum/core's crawler does:
 * that cost as much again as the whole validation (1.4 ms a Synthea resource), this about 1 %.
 */
function walk(json: Json, schema: InternalTypeSchema, path: string, issues: Issue[]): void {
  const elements = elementsOf(schema);
  for (const [key, value] of Object.entries(json)) {
    const extension = key.startsWith('_');
    const element = elements.get(extension ? key.slice(1) : key);
    if (!element) {
      continue;
    }
    const items: unknown[] = Array.isArray(value) ? value : [value];
    items.forEach((item, index) => {
      const at = `${path}.${element.name}${Array.isArray(value) ? `[${index}]` : ''}`;
      if (extension) {
        // A primitive's `_element`: its id and extensions, which hold dates too.
        if (isObject(item)) walk(item, getDataType('Element'), at, issues);
      } else if (isPrimitiveType(element.type)) {
        check(item, element.type, at, issues);
      } else if (isObject(item)) {
        if (element.type === 'Period') checkOrder(item, at, issues);
        if (element.type === 'Reference') checkReference(item, at, issues);
        const type = element.type === 'Resource' ? item['resourceType'] : element.type;
        const inner = schema.innerTypes.find((candidate) => candidate.name === type);
        if (typeof type === 'string') walk(item, inner ?? getDataType(type), at, issues);
      }
    });
  }
}

function check(value: unknown, type: string, path: string, issues: Issue[]): void {
  if (type === 'xhtml' && typeof value === 'string') {
    const problem = narrativeProblem(value);
    if (problem) {
      issues.push({
        severity: 'error',
        code: 'invalid',
        diagnostics: `${path} is not a narrative R4 allows: ${problem}`,
        expression: [path],
      });
    }
    return;
  }
  if (isDateType(type) && typeof value === 'string' && !PATTERNS[type].test(value)) {
    issues.push({
      severity: 'error',
      code: 'value',
      diagnostics: `${path} is not an R4 ${type}: ${FORMATS[type]}`,
      expression: [path],
    });
  }
}

/** R4's invariant per-1: a Period's start SHALL be lower than its end (periodInOrder). */
function checkOrder(period: Json, path: string, issues: Issue[]): void {
  const { start, end } = period;
  if (typeof start !== 'string' || typeof end !== 'string') {
    return;
  }
  if (!PATTERNS.dateTime.test(start) || !PATTERNS.dateTime.test(end)) {
    return; // Refused for its format already.
  }
  if (!periodInOrder(start, end)) {
    issues.push({
      severity: 'error',
      code: 'invalid',
      diagnostics: `${path} starts after it ends (per-1: start SHALL have a lower value than end)`,
      expression: [path],
    });
  }
}

/**
 * A relative reference SHALL be `Type/id` or `Type/id/_history/vid` (references.html). One that
 * is not (`Patient/1/_history/`, `Patient/1/_history/Patient/2`) was stored, and then read one
 * way by the search index and another by the access check, or not at all.
 */
function checkReference(reference: Json, path: string, issues: Issue[]): void {
  const value = reference['reference'];
  if (typeof value === 'string' && isMalformedRelative(value)) {
    issues.push({
      severity: 'error',
      code: 'value',
      diagnostics:
        `${path}.reference is not a reference R4 can read: Type/id or Type/id/_history/vid ` +
        '(relative), an absolute URL, urn:uuid:…, or #id for a contained resource',
      expression: [`${path}.reference`],
    });
  }
}

/** A type's elements by JSON name (`effectiveDateTime`), with the name and type they stand for. */
function elementsOf(schema: InternalTypeSchema): Map<string, { name: string; type: string }> {
  let elements = ELEMENTS.get(schema);
  if (!elements) {
    elements = new Map();
    for (const [name, element] of Object.entries(schema.elements)) {
      if (name.endsWith('[x]')) {
        for (const { code } of element.type) {
          const typed = `${name.slice(0, -3)}${code.charAt(0).toUpperCase()}${code.slice(1)}`;
          elements.set(typed, { name, type: code });
        }
      } else if (element.type[0]) {
        elements.set(name, { name, type: element.type[0].code });
      }
    }
    ELEMENTS.set(schema, elements);
  }
  return elements;
}

const ELEMENTS = new WeakMap<InternalTypeSchema, Map<string, { name: string; type: string }>>();
