import './websocket-shim.js';
import {
  evalFhirPathTyped,
  getElementDefinition,
  isResourceType,
  parseFhirPathPatchParameters,
  toTypedValue,
  type FhirPathPatch,
  type TypedValue,
} from '@medplum/core';
import type { Parameters, ParametersParameter } from '@medplum/fhirtypes';
import { AppError } from '../common/errors/app-error.js';
import { prototypeKeyError } from '../common/http/json-body.js';
import { isPrototypeKey } from '../common/http/json-scan.js';
import type { FhirResource } from './fhir-types.js';
import { isPatchPath, MAX_PATCH_PATH_LENGTH } from './fhirpath-patch-paths.js';
import { assertPatchSize } from './patch-size.js';
import { Turns } from './turns.js';

type Json = Record<string, unknown>;

const TYPES = new Set(['add', 'insert', 'delete', 'replace', 'move']);
/** The parts each operation type needs (FHIR R4 fhirpatch.html), besides `type` and `path`. */
const NEEDS: Record<string, string[]> = {
  add: ['name', 'value'],
  insert: ['index', 'value'],
  delete: [],
  replace: ['value'],
  move: ['source', 'destination'],
};

const isObject = (value: unknown): value is Json =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** A FHIRPath Patch body: a Parameters resource (a JSON Patch is an array). */
export function isFhirPathPatch(body: unknown): body is Parameters {
  return isObject(body) && body['resourceType'] === 'Parameters';
}

/**
 * Applies a FHIRPath Patch (FHIR R4 fhirpatch.html) to a copy of the resource. @medplum/core
 * (our FHIRPath engine) parses the operations and evaluates their paths; the changes are made
 * here, as its own `fhirpathPatchTypedValue` has measured defects: an unknown operation type is
 * a no-op, `add` overwrites a single element that is there, values given as parts (a backbone
 * element such as Patient.contact) are unreadable, and any operation at or through a choice
 * element (`Observation.value`, stored as `valueQuantity`) silently changes nothing, as it
 * looks for the JSON key `value`. Paths keep to the FHIRPath a patch needs
 * (fhirpath-patch-paths.ts), and a patch holds at most MAX_PATCH_OPERATIONS operations
 * (patch-size.ts), as the engine has no cost limit. Errors name the operation by number and
 * never quote the path or values: they can hold PHI. Contained resources are reached like any element (the patched
 * resource holds them); the caller validates the result, which keeps them unlabelled and
 * unversioned (dom-4, dom-5).
 */
export async function applyFhirPathPatch(
  resource: FhirResource,
  parameters: Parameters,
): Promise<FhirResource> {
  const { operations, entries } = checkedOperations(parameters);
  const patched = structuredClone(resource) as Json;
  const root = toTypedValue(patched);
  // The engine's where() costs ~30 µs per element it filters: 100 operations on a list of 3,000
  // took 10 s, which the event loop spends in turns rather than in one block.
  const turns = new Turns();
  for (const [i, operation] of operations.entries()) {
    await turns.next();
    const label = labelOf(operation, i);
    // What the path leads to now: the element added to, or the one(s) changed.
    const targets = evaluate(root, operation.path, label);
    const ready = withPartsValue(targets, operation, entries[i]!, label);
    apply(patched, targets, ready, (why) =>
      AppError.of(422, 'processing', `${label} cannot be applied: ${why}`),
    );
  }
  return withoutEmpty(patched) as FhirResource;
}

/**
 * What can be checked of a FHIRPath Patch without the resource (its operations, their parts
 * and paths), so that a PATCH or a Bundle's PATCH entry is refused before anything is read.
 */
export function checkFhirPathPatch(parameters: Parameters): void {
  checkedOperations(parameters);
}

function checkedOperations(parameters: Parameters): {
  operations: FhirPathPatch[];
  entries: ParametersParameter[];
} {
  const entries = (parameters.parameter ?? []).filter((p) => p.name === 'operation');
  if (!Array.isArray(parameters.parameter) || entries.length !== parameters.parameter.length) {
    throw AppError.invalid(
      'A FHIRPath Patch is a Parameters resource whose parameters are all named "operation"',
    );
  }
  assertPatchSize('FHIRPath Patch', entries.length);
  const operations = parseFhirPathPatchParameters(parameters);
  operations.forEach((operation, i) => check(operation, entries[i]!, labelOf(operation, i)));
  return { operations, entries };
}

function labelOf(operation: FhirPathPatch, i: number): string {
  return `FHIRPath Patch operation ${i + 1} (${String(operation.type)})`;
}

/** The parts an operation of its type needs, with the right types. */
function check(operation: FhirPathPatch, entry: ParametersParameter, label: string): void {
  const type = String(operation.type);
  if (!TYPES.has(type)) {
    throw AppError.invalid(`FHIRPath Patch operation type must be one of ${[...TYPES].join(', ')}`);
  }
  if (typeof operation.path !== 'string' || operation.path === '') {
    throw AppError.invalid(`${label} needs a path (valueString)`);
  }
  if (!isPatchPath(operation.path)) {
    throw AppError.of(
      400,
      'not-supported',
      `${label}: its path may use only element names, [n], first(), last(), ofType(Type) and where() comparing an element with a literal (= joined by and), in at most ${MAX_PATCH_PATH_LENGTH} characters`,
    );
  }
  if ('name' in operation && isPrototypeKey(String(operation.name))) {
    throw prototypeKeyError({ what: label });
  }
  const parts = new Set((entry.part ?? []).map((part) => part.name));
  for (const needed of NEEDS[type]!) {
    const present =
      needed === 'value'
        ? parts.has('value')
        : typeof (operation as Record<string, unknown>)[needed] ===
          (needed === 'name' ? 'string' : 'number');
    if (!present) {
      throw AppError.invalid(
        `${label} needs a ${needed} (${needed === 'name' ? 'valueString' : needed === 'value' ? 'value[x] or parts' : 'valueInteger'})`,
      );
    }
  }
}

/**
 * The operation with its value read from parts when it has no value[x]: the parts are the
 * elements of the type the value goes into (the added element's, or the targeted one's).
 */
function withPartsValue(
  base: TypedValue[],
  operation: FhirPathPatch,
  entry: ParametersParameter,
  label: string,
): FhirPathPatch {
  if (!('value' in operation) || operation.value !== undefined) return operation;
  const valuePart = entry.part?.find((part) => part.name === 'value');
  // A whole resource (a contained one) comes as Parameters carry resources: in `resource`.
  if (valuePart?.resource !== undefined) {
    const type = resourceTypeOf(valuePart.resource);
    if (!type) throw AppError.invalid(`${label}: its value resource has no known resourceType`);
    return { ...operation, value: { type, value: valuePart.resource } };
  }
  const parts = valuePart?.part;
  if (!parts || parts.length === 0) {
    throw AppError.invalid(`${label}: its value has neither a value[x] nor parts`);
  }
  const type =
    operation.type === 'add'
      ? singleType(base.length === 1 ? elementOf(base[0]!.type, operation.name, label) : undefined)
      : base[0]?.type;
  if (!type) {
    throw AppError.of(
      422,
      'processing',
      `${label} cannot be applied: its path does not lead to one element whose type takes parts`,
    );
  }
  return { ...operation, value: { type, value: fromParts(type, parts, label) } };
}

/** An element value built from parts (name and value[x], or nested parts) for `type`. */
function fromParts(type: string, parts: ParametersParameter[], label: string): Json {
  const value: Json = {};
  for (const part of parts) {
    if (isPrototypeKey(part.name)) throw prototypeKeyError({ what: label });
    const element = elementOf(type, part.name, label);
    const nested = part.part;
    const single: unknown = nested
      ? fromParts(singleType(element) ?? '', nested, label)
      : Object.entries(part).find(([key]) => key.startsWith('value'))?.[1];
    const name = part.name;
    if (single === undefined) {
      throw AppError.invalid(`${label}: part ${name} has no value`);
    }
    value[name] = element.isArray
      ? [...((value[name] as unknown[] | undefined) ?? []), single]
      : single;
  }
  return value;
}

function evaluate(root: TypedValue, path: string, label: string): TypedValue[] {
  try {
    // A step named like what every object has (`Patient.constructor`) yields a value of no
    // type and no value: no element.
    return evalFhirPathTyped(path, [root]).filter((found) => found.value !== undefined);
  } catch {
    throw AppError.invalid(`${label}: its path is not a FHIRPath expression this server reads`);
  }
}

function elementOf(type: string, name: string | undefined, label: string) {
  const element = name ? definitionOf(type, name) : undefined;
  if (!element) {
    throw AppError.invalid(`${label}: ${type} has no element ${String(name)}`);
  }
  return element;
}

function singleType(element: { type: { code: string }[] } | undefined): string | undefined {
  return element?.type.length === 1 ? element.type[0]!.code : undefined;
}

/** FHIR JSON has no empty arrays or objects: a delete can leave them, so they go too. */
function withoutEmpty(value: unknown): unknown {
  if (Array.isArray(value)) {
    const items = value.map(withoutEmpty).filter((item) => item !== undefined);
    return items.length > 0 ? items : undefined;
  }
  if (isObject(value)) {
    const entries = Object.entries(value)
      .map(([key, item]) => [key, withoutEmpty(item)] as const)
      .filter(([, item]) => item !== undefined);
    return entries.length > 0 ? Object.fromEntries(entries) : undefined;
  }
  return value;
}

type Refuse = (why: string) => AppError;

/** Where an evaluated element is in the JSON, and its definition there. */
interface Place {
  parent: Json | unknown[];
  key: string | number;
  /** For an item of a list: the object holding the list, and the list's key there. */
  list?: { owner: Json; key: string };
  /** The element's definition, when the last step is a name (not an index). */
  element?: ElementDefinition;
  /** For a choice element (`value[x]`): its name, `value`. */
  choice?: string;
}

type ElementDefinition = NonNullable<ReturnType<typeof getElementDefinition>>;

/**
 * A type's element by name. @medplum/core looks the name up on a plain object, where
 * `constructor`, `toString` or `__proto__` find what every object has (a function), which has
 * no `type`: a patch naming one was a 500.
 */
function definitionOf(type: string, name: string): ElementDefinition | undefined {
  return isPrototypeKey(name) ? undefined : getElementDefinition(type, name);
}

/** One operation, on the elements its path evaluated to before it ran (fhirpatch.html). */
function apply(document: Json, targets: TypedValue[], operation: FhirPathPatch, refuse: Refuse) {
  const one = (): TypedValue => {
    if (targets.length > 1) throw refuse('its path matches more than one element');
    if (targets.length === 0) throw refuse('its path matches no element');
    return targets[0]!;
  };
  /** replace and delete change an element, never the resource itself. */
  const changed = (): Place => {
    const target = one();
    if (!('path' in target) || !String(target.path).includes('.')) {
      throw refuse('its path is the resource itself, not one of its elements');
    }
    return locate(document, target, refuse);
  };
  switch (operation.type) {
    case 'add': {
      const base = one();
      const at = locate(document, base, refuse);
      const container = valueAt(at);
      if (!isObject(container)) throw refuse('its path does not lead to an element with children');
      const element = definitionOf(base.type, operation.name);
      if (!element) throw refuse(`${base.type} has no such element`);
      const key = choiceKey(element, operation.name, operation.value, refuse) ?? operation.name;
      if (element.isArray) {
        const list = (container[key] as unknown[] | undefined) ?? [];
        container[key] = [...list, structuredClone(operation.value.value)];
      } else {
        const variants = variantsOf(element, operation.name);
        if (variants.some((variant) => container[variant] !== undefined)) {
          throw refuse('the element it adds is there already (use replace)');
        }
        container[key] = structuredClone(operation.value.value);
      }
      return;
    }
    case 'replace': {
      const at = changed();
      const key =
        at.element && at.choice
          ? choiceKey(at.element, at.choice, operation.value, refuse)
          : undefined;
      if (key !== undefined && key !== at.key) {
        // A choice element may change type: valueQuantity becomes valueString.
        delete (at.parent as Json)[at.key as string];
        (at.parent as Json)[key] = structuredClone(operation.value.value);
      } else {
        (at.parent as Json)[at.key as string] = structuredClone(operation.value.value);
      }
      return;
    }
    case 'delete': {
      // Deleting what is not there changes nothing (fhirpatch.html).
      if (targets.length === 0) return;
      remove(changed());
      return;
    }
    case 'insert':
    case 'move': {
      const { list, companion } = listOf(document, targets, refuse);
      const bound = (index: number, max: number): number => {
        if (!Number.isInteger(index) || index < 0 || index > max) {
          throw refuse('an index is out of bounds');
        }
        return index;
      };
      if (operation.type === 'insert') {
        const at = bound(operation.index, list.length);
        list.splice(at, 0, structuredClone(operation.value.value));
        companion?.splice(at, 0, null);
      } else {
        const from = bound(operation.source, list.length - 1);
        const [moved] = list.splice(from, 1);
        const to = bound(operation.destination, list.length);
        list.splice(to, 0, moved);
        if (companion) {
          const [extensions] = companion.splice(from, 1);
          companion.splice(to, 0, extensions ?? null);
        }
      }
      return;
    }
  }
}

/**
 * The JSON place of an evaluated element, from its path (`Observation.component[0].value`),
 * walking the definitions so that a choice element is found under its typed name
 * (`valueQuantity`).
 */
function locate(document: Json, target: TypedValue, refuse: Refuse): Place {
  if (!('path' in target) || typeof target.path !== 'string') {
    throw refuse('its path does not lead to an element of the resource');
  }
  const steps = pointerOf(target.path);
  let type = String(document['resourceType']);
  let place: Place = { parent: { root: document }, key: 'root' };
  for (const step of steps) {
    const value = valueAt(place);
    if (Array.isArray(value) && /^\d+$/.test(step)) {
      const list = isObject(place.parent)
        ? { owner: place.parent, key: String(place.key) }
        : undefined;
      place = { parent: value, key: Number(step), ...(list ? { list } : {}) };
      continue;
    }
    if (!isObject(value)) throw refuse('its path matches no element');
    // An element of type Resource (`contained`) holds a whole resource: its elements are those
    // of the type it names (fhirpatch.html: a contained resource is part of the one patched).
    if (type === 'Resource') {
      const held = resourceTypeOf(value);
      if (!held) throw refuse('its path matches no element');
      type = held;
    }
    const element = definitionOf(type, step);
    if (!element) throw refuse('its path matches no element');
    const variant = variantsOf(element, step).find((key) => value[key] !== undefined);
    const choice = element.type.length > 1 ? step : undefined;
    place = { parent: value, key: variant ?? step, element, ...(choice ? { choice } : {}) };
    type =
      choice && variant
        ? element.type.find((t) => `${step}${capital(t.code)}` === variant)!.code
        : element.type[0]!.code;
  }
  if (valueAt(place) === undefined) throw refuse('its path matches no element');
  return place;
}

/**
 * The one list whose items the path evaluated to, for insert and move, and the companion
 * list of a primitive one (`_given` beside `given`), which holds each item's id and extensions.
 */
function listOf(
  document: Json,
  targets: TypedValue[],
  refuse: Refuse,
): { list: unknown[]; companion: unknown[] | undefined } {
  if (targets.length === 0) throw refuse('its path matches no element');
  const places = targets.map((target) => locate(document, target, refuse));
  const list = places[0]!.parent;
  if (!Array.isArray(list) || places.some((place, i) => place.parent !== list || place.key !== i)) {
    throw refuse('its path is not one list');
  }
  if (places.length !== list.length) throw refuse('its path is not the whole list');
  return { list, companion: companionOf(places[0]!) };
}

/** A primitive's id and extensions go with it (`_birthDate`, an item of `_given`). */
function companionOf(place: Place): unknown[] | undefined {
  if (!place.list) return undefined;
  const companion = place.list.owner[`_${place.list.key}`];
  return Array.isArray(companion) ? companion : undefined;
}

function remove(place: Place): void {
  if (Array.isArray(place.parent)) {
    place.parent.splice(place.key as number, 1);
    const companion = companionOf(place);
    if (companion) {
      companion.splice(place.key as number, 1);
      if (companion.every((item) => item === null)) delete place.list!.owner[`_${place.list!.key}`];
    }
  } else {
    delete place.parent[place.key as string];
    if (typeof place.key === 'string') delete place.parent[`_${place.key}`];
  }
}

function valueAt(place: Place): unknown {
  return Array.isArray(place.parent)
    ? place.parent[place.key as number]
    : place.parent[place.key as string];
}

/** The JSON keys an element may stand under: `value` for most, `valueQuantity`… for a choice. */
function variantsOf(element: ElementDefinition, name: string): string[] {
  return element.type.length > 1 ? element.type.map((t) => `${name}${capital(t.code)}`) : [name];
}

/** For a choice element, the key of a value of this type (`valueString`), if it may take it. */
function choiceKey(
  element: ElementDefinition,
  name: string,
  value: TypedValue,
  refuse: Refuse,
): string | undefined {
  if (element.type.length <= 1) return undefined;
  if (!element.type.some((t) => t.code === value.type)) {
    throw refuse('its value is of a type the element does not take');
  }
  return `${name}${capital(value.type)}`;
}

/** The type a resource in the JSON names, if it is a resource type. */
function resourceTypeOf(value: unknown): string | undefined {
  const type = isObject(value) ? value['resourceType'] : undefined;
  return typeof type === 'string' && isResourceType(type) ? type : undefined;
}

function capital(code: string): string {
  return code.charAt(0).toUpperCase() + code.slice(1);
}

/** The steps of an evaluated element's path: `Patient.name[0].given` to name, 0, given. */
function pointerOf(path: string): string[] {
  return path
    .split('.')
    .slice(1)
    .flatMap((step) => {
      const indexed = /^(.*)\[(\d+)\]$/.exec(step);
      return indexed ? [indexed[1]!, indexed[2]!] : [step];
    });
}
