import './websocket-shim.js';
import {
  evalFhirPathTyped,
  fhirpathPatchTypedValue,
  getElementDefinition,
  parseFhirPathPatchParameters,
  toTypedValue,
  type FhirPathPatch,
  type TypedValue,
} from '@medplum/core';
import type { Parameters, ParametersParameter } from '@medplum/fhirtypes';
import { AppError } from '../common/errors/app-error.js';
import type { FhirResource } from './fhir-types.js';

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
 * Applies a FHIRPath Patch (FHIR R4 fhirpatch.html) to a copy of the resource, with
 * @medplum/core's implementation, after checking what it leaves to the caller: each operation's
 * parts, `add` of a single element that is there already (which it would overwrite), paths at or
 * through a choice element (where it changes nothing), and values given as parts (a backbone
 * element such as Patient.contact, which it cannot read). Errors
 * name the operation by number and never quote the path or values: they can hold PHI.
 */
export function applyFhirPathPatch(resource: FhirResource, parameters: Parameters): FhirResource {
  const entries = (parameters.parameter ?? []).filter((p) => p.name === 'operation');
  if (!Array.isArray(parameters.parameter) || entries.length !== parameters.parameter.length) {
    throw AppError.invalid(
      'A FHIRPath Patch is a Parameters resource whose parameters are all named "operation"',
    );
  }
  const operations = parseFhirPathPatchParameters(parameters);
  const patched = structuredClone(resource) as Json;
  const root = toTypedValue(patched);
  operations.forEach((operation, i) => {
    const label = `FHIRPath Patch operation ${i + 1} (${String(operation.type)})`;
    check(operation, entries[i]!, label);
    // What the path leads to now: the element added to, or the one(s) changed.
    const targets = evaluate(root, operation.path, label);
    const ready = withPartsValue(targets, operation, entries[i]!, label);
    if (ready.type === 'add') assertAddable(targets, ready, label);
    assertReachable(patched, targets, label);
    try {
      fhirpathPatchTypedValue(root, [ready]);
    } catch (error) {
      throw AppError.of(422, 'processing', `${label} cannot be applied: ${reason(error)}`);
    }
  });
  return withoutEmpty(patched) as FhirResource;
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
  const parts = entry.part?.find((part) => part.name === 'value')?.part;
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

/** `add` adds to a list, or sets a single element that is not there yet (fhirpatch.html). */
function assertAddable(
  base: TypedValue[],
  operation: Extract<FhirPathPatch, { type: 'add' }>,
  label: string,
): void {
  if (base.length !== 1 || !isObject(base[0]!.value)) return;
  const element = getElementDefinition(base[0]!.type, operation.name);
  if (element && !element.isArray && base[0]!.value[operation.name] !== undefined) {
    throw AppError.of(
      422,
      'processing',
      `${label} cannot be applied: the element it adds is there already (use replace)`,
    );
  }
}

/**
 * @medplum/core finds a choice element (`Observation.value`, stored as `valueQuantity`) and
 * then changes the JSON at `/value`, where there is nothing: an operation whose path ends at or
 * goes through one does nothing, silently. Refused instead.
 */
function assertReachable(document: Json, targets: TypedValue[], label: string): void {
  for (const target of targets) {
    if (!('path' in target) || typeof target.path !== 'string') continue;
    let value: unknown = document;
    for (const key of pointerOf(target.path)) {
      value = isObject(value) || Array.isArray(value) ? (value as Json)[key] : undefined;
    }
    if (value === undefined) {
      throw AppError.of(
        422,
        'processing',
        `${label} cannot be applied: its path ends at a choice element (such as Observation.value[x]), which this server changes by JSON Patch only`,
      );
    }
  }
}

/** The JSON keys of an evaluated element's path: `Patient.name[0].given` to name, 0, given. */
function pointerOf(path: string): string[] {
  return path
    .split('.')
    .slice(1)
    .flatMap((step) => {
      const indexed = /^(.*)\[(\d+)\]$/.exec(step);
      return indexed ? [indexed[1]!, indexed[2]!] : [step];
    });
}

function evaluate(root: TypedValue, path: string, label: string): TypedValue[] {
  try {
    return evalFhirPathTyped(path, [root]);
  } catch {
    throw AppError.invalid(`${label}: its path is not a FHIRPath expression this server reads`);
  }
}

function elementOf(type: string, name: string | undefined, label: string) {
  const element = name ? getElementDefinition(type, name) : undefined;
  if (!element) {
    throw AppError.invalid(`${label}: ${type} has no element ${String(name)}`);
  }
  return element;
}

function singleType(element: { type: { code: string }[] } | undefined): string | undefined {
  return element?.type.length === 1 ? element.type[0]!.code : undefined;
}

/** Why @medplum/core refused an operation, in words that quote nothing from the request. */
function reason(error: unknown): string {
  const message = error instanceof Error ? error.message : '';
  if (/^Resolved multiple/.test(message)) return 'its path matches more than one element';
  if (/^Failed to resolve|^Cannot resolve/.test(message)) return 'its path matches no element';
  if (/out of bounds/.test(message)) return 'an index is out of bounds';
  if (/heterogeneous|misordered/.test(message)) return 'its path is not one list';
  if (/^Cant|^Unexpected|token/i.test(message)) return 'its path is not a FHIRPath expression';
  return 'the resource has no such place for it';
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
