import './websocket-shim.js';
import {
  getDataType,
  isPrimitiveType,
  isResourceType,
  type InternalSchemaElement,
  type InternalTypeSchema,
} from '@medplum/core';
import type { Issue } from '../common/errors/app-error.js';
import type { FhirResource } from './fhir-types.js';
import { literalReference } from './literal-reference.js';

/**
 * The issues of every Reference that names a type its element does not allow (R4's
 * `targetProfile` of the element: an Observation's subject is a Patient, Group, Device or
 * Location), at any depth: backbone elements, extensions' values and contained resources
 * included. The type named is that of a literal reference (`Medication/1`, versioned or after
 * any base URL), of the contained resource a local one names (`#m1`), of a conditional one
 * (`Medication?code=…`), or, for a logical reference (an identifier alone), its `type`; a
 * type that is no resource type (`Foo/1`) is refused wherever it stands.
 * FhirService also checks the references search parameters index, after a Bundle's `urn:uuid:`
 * ones are resolved; this check reaches the others, which were stored until 2026-12-07 (a local
 * reference to a contained Medication as an Observation's subject; a Medication as a note's
 * author, which no parameter indexes). Element names as @medplum/core's (`author[x]`).
 */
export function referenceTargetIssues(resource: FhirResource): Issue[] {
  const issues: Issue[] = [];
  const scope = scopeOf(resource);
  walk(resource, getDataType(resource.resourceType), resource.resourceType, scope, issues);
  return issues;
}

type Json = Record<string, unknown>;

/** What `#id` names where a reference stands: the resource's contained ones, `#` the resource. */
interface Scope {
  self: string;
  contained: Map<string, string>;
}

const isObject = (value: unknown): value is Json =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

function scopeOf(resource: Json): Scope {
  const contained = new Map<string, string>();
  if (Array.isArray(resource['contained'])) {
    for (const entry of resource['contained'] as unknown[]) {
      if (isObject(entry) && typeof entry['id'] === 'string') {
        const type = entry['resourceType'];
        if (typeof type === 'string') contained.set(entry['id'], type);
      }
    }
  }
  return { self: String(resource['resourceType']), contained };
}

function walk(json: Json, schema: InternalTypeSchema, path: string, scope: Scope, issues: Issue[]) {
  const elements = elementsOf(schema);
  for (const [key, value] of Object.entries(json)) {
    const extension = key.startsWith('_');
    const element = elements.get(extension ? key.slice(1) : key);
    if (!element || (!extension && isPrimitiveType(element.type))) continue;
    const items: unknown[] = Array.isArray(value) ? value : [value];
    items.forEach((item, index) => {
      if (!isObject(item)) return;
      const at = `${path}.${element.name}${Array.isArray(value) ? `[${index}]` : ''}`;
      if (extension) {
        // A primitive's `_element`: its id and extensions, whose values may be references.
        walk(item, getDataType('Element'), at, scope, issues);
        return;
      }
      if (element.type === 'Reference') checkTarget(item, element.targets, at, scope, issues);
      if (element.type === 'Resource') {
        const type = item['resourceType'];
        if (typeof type !== 'string') return;
        // A contained resource's `#id` names its container's contained resources (it has none of
        // its own); any other resource held (a Bundle entry's, a Parameters value) has its own.
        const inner = key === 'contained' ? scope : scopeOf(item);
        walk(item, getDataType(type), at, inner, issues);
        return;
      }
      const inner = schema.innerTypes.find((candidate) => candidate.name === element.type);
      walk(item, inner ?? getDataType(element.type), at, scope, issues);
    });
  }
}

function checkTarget(
  reference: Json,
  allowed: ReadonlySet<string> | undefined,
  path: string,
  scope: Scope,
  issues: Issue[],
): void {
  const named = namedType(reference, scope);
  if (named === undefined) return;
  if (!isResourceType(named)) {
    // `Foo/1`, `PATIENT/1`: no resource ever has that type, whatever the element allows (an
    // extension's valueReference, which no search parameter indexes, took it until 2026-12-07).
    issues.push({
      severity: 'error',
      code: 'invalid',
      diagnostics: `${path} names a ${named}, which is not a resource type`,
      expression: [path],
    });
    return;
  }
  if (!allowed || allowed.has(named)) return;
  issues.push({
    severity: 'error',
    code: 'invalid',
    diagnostics: `${path} refers to a ${named}, which it cannot: it refers to ${[...allowed].join(', ')}`,
    expression: [path],
  });
}

/** The resource type a reference names, when it names one the server can tell. */
function namedType(reference: Json, scope: Scope): string | undefined {
  const value = reference['reference'];
  if (typeof value === 'string') {
    if (value === '#') return scope.self;
    if (value.startsWith('#')) return scope.contained.get(value.slice(1));
    const conditional = CONDITIONAL.exec(value)?.[1];
    if (conditional) return conditional;
    // `urn:uuid:…` (a Bundle entry, resolved later) and other URIs name no type here.
    return literalReference(value)?.type;
  }
  const stated = reference['type'];
  return typeof stated === 'string' && TYPE.test(stated) ? stated : undefined;
}

const TYPE = /^[A-Z][A-Za-z]{1,63}$/;
const CONDITIONAL = /^([A-Z][A-Za-z]{1,63})\?/;

const PROFILE_BASE = 'http://hl7.org/fhir/StructureDefinition/';

interface Element {
  name: string;
  type: string;
  /** For a Reference: the resource types it may name; undefined for any. */
  targets?: ReadonlySet<string>;
}

/** A type's elements by JSON name (`authorReference`), as date-values.ts reads them. */
function elementsOf(schema: InternalTypeSchema): Map<string, Element> {
  let elements = ELEMENTS.get(schema);
  if (!elements) {
    elements = new Map();
    for (const [name, element] of Object.entries(schema.elements)) {
      if (name.endsWith('[x]')) {
        for (const type of element.type) {
          const typed = `${name.slice(0, -3)}${type.code.charAt(0).toUpperCase()}${type.code.slice(1)}`;
          elements.set(typed, { name, type: type.code, targets: targetsOf(type) });
        }
      } else if (element.type[0]) {
        elements.set(name, {
          name,
          type: element.type[0].code,
          targets: targetsOf(element.type[0]),
        });
      }
    }
    ELEMENTS.set(schema, elements);
  }
  return elements;
}

/**
 * The types a Reference may name, from its targetProfiles (`…/StructureDefinition/Patient`);
 * undefined for any: none given, `Resource`, or a profile that is not a base type's.
 */
function targetsOf(type: InternalSchemaElement['type'][number]): ReadonlySet<string> | undefined {
  if (type.code !== 'Reference' || !type.targetProfile?.length) return undefined;
  const targets = new Set<string>();
  for (const profile of type.targetProfile) {
    const name = profile.startsWith(PROFILE_BASE) ? profile.slice(PROFILE_BASE.length) : '';
    if (!TYPE.test(name) || name === 'Resource' || name === 'DomainResource') return undefined;
    targets.add(name);
  }
  return targets;
}

const ELEMENTS = new WeakMap<InternalTypeSchema, Map<string, Element>>();
