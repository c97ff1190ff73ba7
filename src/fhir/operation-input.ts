import { AppError } from '../common/errors/app-error.js';
import { appendValue } from '../common/http/query-record.js';

export type OperationQuery = Record<string, string | string[] | undefined>;

/** A Coding parameter (`coding`, a CodeableConcept's codings) as the query entries it stands for. */
export interface CodingInput {
  system?: string;
  code?: string;
  display?: string;
}

/**
 * The input of an operation invoked by POST, as the query its GET takes. R4 (operations.html)
 * has servers take POST for every operation, with a Parameters resource as the body; until
 * 2026-12-06 these answered 405, and a parameter of a complex type (`$validate-code`'s coding)
 * could not be sent at all. Each parameter's primitive value becomes text under its name,
 * beside the query string's (a name given in both, or twice, is repeated, as in a query).
 * `codings` names the parameters of type Coding or CodeableConcept the operation takes: their
 * codings are returned apart. Anything else (a resource, parts, another complex type) is a 400.
 */
export function operationInput(
  query: OperationQuery,
  body: unknown,
  codings: readonly string[] = [],
): { query: OperationQuery; codings: Map<string, CodingInput[]> } {
  // No prototype: a parameter named `__proto__` or `toString` is a name like another.
  // Lists copied: a body's values are added to them, and the caller's query stays as it was.
  const merged = Object.create(null) as OperationQuery;
  for (const [name, value] of Object.entries(query)) {
    merged[name] = Array.isArray(value) ? [...value] : value;
  }
  const found = new Map<string, CodingInput[]>();
  if (body === undefined || body === null || body === '') return { query: merged, codings: found };
  const resource = body as { resourceType?: unknown; parameter?: unknown };
  if (typeof body !== 'object' || Array.isArray(body) || resource.resourceType !== 'Parameters') {
    throw AppError.invalid('The body of an operation is a Parameters resource');
  }
  if (resource.parameter !== undefined && !Array.isArray(resource.parameter)) {
    throw AppError.invalid('Parameters.parameter is a list', ['Parameters.parameter']);
  }
  for (const [i, parameter] of ((resource.parameter as unknown[] | undefined) ?? []).entries()) {
    const where = [`Parameters.parameter[${i}]`];
    const { name, ...rest } = (parameter ?? {}) as Record<string, unknown>;
    if (typeof name !== 'string' || name === '') {
      throw AppError.invalid('Every parameter has a name', where);
    }
    const values = Object.entries(rest).filter(([key]) => key.startsWith('value'));
    if (values.length !== 1 || Object.keys(rest).length !== 1) {
      throw AppError.invalid(
        `Parameter ${name} must have one value[x], and no parts or resource`,
        where,
      );
    }
    const [key, value] = values[0]!;
    if (codings.includes(name) && (key === 'valueCoding' || key === 'valueCodeableConcept')) {
      const list = key === 'valueCoding' ? [value] : codingsOf(value, where);
      const codings = found.get(name) ?? [];
      for (const one of list) codings.push(codingOf(one, where));
      found.set(name, codings);
      continue;
    }
    if (!['string', 'number', 'boolean'].includes(typeof value)) {
      throw AppError.invalid(`Parameter ${name} is not taken as a ${key.slice(5)}`, where);
    }
    appendValue(merged, name, String(value));
  }
  return { query: merged, codings: found };
}

/** A CodeableConcept's codings: a list of objects, else a 400. */
function codingsOf(value: unknown, where: string[]): unknown[] {
  const coding = (value as { coding?: unknown } | null)?.coding ?? [];
  if (typeof value !== 'object' || value === null || !Array.isArray(coding)) {
    throw AppError.invalid('A CodeableConcept is an object whose coding is a list', where);
  }
  return coding;
}

function codingOf(value: unknown, where: string[]): CodingInput {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw AppError.invalid('A Coding is an object', where);
  }
  const coding = value as Record<string, unknown>;
  const text = (key: string): string | undefined => {
    const one = coding[key];
    if (one === undefined) return undefined;
    if (typeof one !== 'string') throw AppError.invalid(`Coding.${key} is a string`, where);
    return one;
  };
  const system = text('system');
  const code = text('code');
  const display = text('display');
  return {
    ...(system !== undefined ? { system } : {}),
    ...(code !== undefined ? { code } : {}),
    ...(display !== undefined ? { display } : {}),
  };
}
