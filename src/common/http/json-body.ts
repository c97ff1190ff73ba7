import { AppError } from '../errors/app-error.js';
import { scanJson, type JsonStep } from './json-scan.js';

/**
 * The deepest nesting a request body may have. FHIR resources nest about 12 levels at most in
 * practice (a Bundle entry's Questionnaire item tree is the deepest we have seen); 64 leaves room
 * and stops bodies built to exhaust the parser's or validator's stack.
 */
export const MAX_JSON_DEPTH = 64;

/**
 * Parses a JSON request body. One scan of the text first (json-scan.ts) refuses excessive
 * nesting before parsing, keys named like what every object has (`__proto__`, `constructor`,
 * `toString`…) at any depth, which would reach code that merges objects (prototype poisoning)
 * or looks names up on plain objects (the FHIR validator), strings with half a surrogate
 * pair, strings or keys with a NUL character, which PostgreSQL cannot store, and a key given
 * twice in one object (JSON.parse keeps the last, silently). With
 * `exactNumbers` (FHIR bodies), numbers that JSON.parse would round are refused too: a decimal
 * is a measurement, and a changed one must not be stored as if it had been sent.
 */
export function parseJsonBody(text: string, options = { exactNumbers: false }): unknown {
  const problem = scanJson(text, MAX_JSON_DEPTH, options);
  if (problem?.kind === 'depth') {
    throw AppError.of(400, 'too-long', `JSON nesting deeper than ${MAX_JSON_DEPTH} levels`);
  }
  if (text.trim().length === 0) {
    throw AppError.of(400, 'structure', 'The request body is empty');
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    // The parser's message quotes the body around the error: never echo it (PHI).
    throw AppError.of(400, 'structure', 'The request body is not valid JSON');
  }
  if (problem?.kind === 'prototype-key') {
    const path = pathOf(value, problem.steps);
    throw prototypeKeyError(path ? { path } : {});
  }
  if (problem?.kind === 'inexact-number') {
    const path = pathOf(value, problem.steps);
    throw AppError.of(
      400,
      'value',
      `${path ?? 'A number'} has more digits than this server keeps exactly (15 significant, ` +
        'or an integer up to 2^53 - 1), or is out of range: send it rounded, or as text where ' +
        'the element allows',
      path ? [path] : undefined,
    );
  }
  if (problem?.kind === 'duplicate-key') {
    const path = pathOf(value, problem.steps);
    throw AppError.of(
      400,
      'structure',
      `${path ?? 'A key'} is given twice in one object: JSON keys must be unique, or which ` +
        'value was meant is a guess',
      path ? [path] : undefined,
    );
  }
  if (problem?.kind === 'nul-character') {
    const path = pathOf(value, problem.steps);
    throw AppError.of(
      400,
      'structure',
      `${path ?? 'A string'} holds a NUL character (\\u0000), which no text stored here may hold`,
      path ? [path] : undefined,
    );
  }
  if (problem) {
    const path = pathOf(value, problem.steps);
    throw AppError.of(
      400,
      'structure',
      `${path ?? 'A string'} holds half a UTF-16 surrogate pair (an escape such as \\ud800 ` +
        'alone), which is no character: JSON text is Unicode',
      path ? [path] : undefined,
    );
  }
  return value;
}

/**
 * The one answer to a key, JSON Patch path or FHIRPath Patch name that is a property every
 * object has, wherever it comes: `path` is the element's (a FHIRPath expression), `what` names
 * the operation that carried it.
 */
export function prototypeKeyError(where: { path?: string; what?: string } = {}): AppError {
  const refused =
    'named like a property of every JavaScript object (__proto__, constructor, toString, ' +
    'valueOf, hasOwnProperty…) are not accepted';
  return AppError.of(
    400,
    'security',
    where.what ? `${where.what}: keys ${refused}` : `Keys ${refused}`,
    where.path ? [where.path] : undefined,
  );
}

/**
 * A FHIRPath-like path (`Patient.name[0].valueOf`), from the resource type when there is one;
 * undefined when a key on the way is not a plain name, which could be anything a client typed.
 */
function pathOf(root: unknown, steps: readonly JsonStep[]): string | undefined {
  const type = (root as { resourceType?: unknown } | null)?.resourceType;
  let path = typeof type === 'string' && PLAIN_NAME.test(type) ? type : '';
  for (const step of steps) {
    if (typeof step === 'number') {
      path += `[${step}]`;
    } else if (PLAIN_NAME.test(step)) {
      path += path === '' ? step : `.${step}`;
    } else {
      return undefined;
    }
  }
  return path;
}

const PLAIN_NAME = /^[A-Za-z_$][A-Za-z0-9_$]{0,63}$/;
