import { holdsExactly } from '../exact-decimal.js';

/** A step of the path to a place in a JSON document: a key, or an index in an array. */
export type JsonStep = string | number;

/** What the scan of a JSON text found wrong, the first of it in the text. */
export type JsonScanProblem =
  | { kind: 'depth' }
  | {
      kind:
        'prototype-key' | 'duplicate-key' | 'lone-surrogate' | 'nul-character' | 'inexact-number';
      steps: JsonStep[];
    };

/**
 * The names every plain object has (Object.prototype's own: `constructor`, `toString`,
 * `__proto__`, `hasOwnProperty`…). As JSON keys they reach code that looks names up on plain
 * objects: @medplum/core's validator finds `toString` among a Patient's elements and passes it,
 * and a merge into `{}` through `__proto__` poisons the prototype. Read from the running engine,
 * so that the list is complete for it.
 */
const PROTOTYPE_KEYS: ReadonlySet<string> = new Set(Object.getOwnPropertyNames(Object.prototype));
/** Whether a key of this length could be one of them: most keys are told apart without a copy. */
const PROTOTYPE_KEY_LENGTH = new Uint8Array(32);
for (const name of PROTOTYPE_KEYS) PROTOTYPE_KEY_LENGTH[name.length] = 1;

export function isPrototypeKey(name: string): boolean {
  return PROTOTYPE_KEY_LENGTH[name.length] === 1 && PROTOTYPE_KEYS.has(name);
}

const QUOTE = 0x22;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
const COMMA = 0x2c;
const LETTER_U = 0x75;
const MINUS = 0x2d;
const DIGIT_0 = 0x30;
const DIGIT_9 = 0x39;

/**
 * One linear pass over a JSON text, before it is parsed: nesting deeper than `maxDepth` (found
 * without recursion, so a body built to exhaust a stack costs none), and keys named like what
 * every object has, at any depth, with the path to them; and escapes of half a UTF-16
 * surrogate pair (`"\ud800"`), which JSON.parse takes but no UTF-8 text can hold (stored, such a
 * string was indexed as U+FFFD and read back differently); escapes of NUL (`"\u0000"`), which
 * PostgreSQL's text and jsonb cannot hold (a tag code or a username that reached them was a
 * 500); with `exactNumbers`, numbers that a double cannot hold as written (exact-decimal.ts),
 * which JSON.parse would quietly round; and a key given twice in one object, of which
 * JSON.parse keeps the last without a word.
 * Strings are skipped with indexOf, so the cost is in the structure rather than the length of
 * the text (about half of what JSON.parse takes). The text is not checked to be JSON
 * (JSON.parse does that); on text that is not, the answer means nothing.
 */
export function scanJson(
  text: string,
  maxDepth: number,
  options: { exactNumbers: boolean },
): JsonScanProblem | undefined {
  // Per level of nesting (plain arrays: typed ones cost more to make than a small body to scan):
  // an array's current index, or -1 for an object, and the span of the object's current key,
  // its end negative when the key has escapes.
  const items = [0];
  const keyStart = [0];
  const keyEnd = [0];
  // The keys of each open object so far: a key given twice is one value lost, and which one
  // JSON.parse keeps (the last) is not what every reader of the same text keeps.
  const keys: Set<string>[] = [];
  let depth = 0;
  let expectKey = false;
  let problem: JsonScanProblem | undefined;
  const length = text.length;
  let nextBackslash = text.indexOf('\\');
  if (nextBackslash === -1) nextBackslash = length;
  for (let i = 0; i < length; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      const start = i + 1;
      let escaped = false;
      let lone = false;
      let nul = false;
      let end = -1;
      for (let from = start; end === -1;) {
        const quote = text.indexOf('"', from);
        if (quote === -1) return problem; // unterminated: JSON.parse says so
        if (nextBackslash < from) {
          nextBackslash = text.indexOf('\\', from);
          if (nextBackslash === -1) nextBackslash = length;
        }
        if (nextBackslash < quote) {
          escaped = true;
          // Past the escaped character (a quote included), or the whole \uXXXX escape.
          const unicode = text.charCodeAt(nextBackslash + 1) === LETTER_U;
          const skip = unicode ? unicodeEscapeLength(text, nextBackslash) : 2;
          if (skip < 0) lone = true;
          else if (unicode && hex4(text, nextBackslash + 2) === 0) nul = true;
          from = nextBackslash + Math.abs(skip);
        } else {
          end = quote;
        }
      }
      i = end;
      const key = expectKey;
      let duplicate = false;
      if (key) {
        expectKey = false;
        keyStart[depth] = start;
        keyEnd[depth] = escaped ? -end : end;
        const seen = keys[depth];
        if (seen) {
          const name = escaped ? keyAt(text, start, -end) : text.slice(start, end);
          duplicate = seen.has(name);
          seen.add(name);
        }
      }
      if (
        !problem &&
        (lone || nul || duplicate || (key && isPrototypeKeyAt(text, start, end, escaped)))
      ) {
        const steps = stepsTo(text, depth, items, keyStart, keyEnd);
        problem = {
          kind: lone
            ? 'lone-surrogate'
            : nul
              ? 'nul-character'
              : duplicate
                ? 'duplicate-key'
                : 'prototype-key',
          steps,
        };
      }
    } else if (c === OPEN_OBJECT || c === OPEN_ARRAY) {
      if (++depth > maxDepth) return { kind: 'depth' };
      expectKey = c === OPEN_OBJECT;
      items[depth] = expectKey ? -1 : 0;
      if (expectKey) keys[depth] = new Set();
    } else if (c === CLOSE_OBJECT || c === CLOSE_ARRAY) {
      if (depth > 0) depth--;
      expectKey = false;
    } else if (c === COMMA && depth > 0) {
      const item = items[depth]!;
      if (item >= 0) items[depth] = item + 1;
      else expectKey = true;
    } else if (options.exactNumbers && (c === MINUS || (c >= DIGIT_0 && c <= DIGIT_9))) {
      let end = i + 1;
      while (end < length && isNumberChar(text.charCodeAt(end))) end++;
      if (!problem && !holdsExactly(text, i, end)) {
        problem = { kind: 'inexact-number', steps: stepsTo(text, depth, items, keyStart, keyEnd) };
      }
      i = end - 1;
    }
  }
  return problem;
}

/** What a JSON number is written with (JSON.parse says whether in the right order). */
function isNumberChar(c: number): boolean {
  return (
    (c >= DIGIT_0 && c <= DIGIT_9) ||
    c === 0x2e ||
    c === 0x65 ||
    c === 0x45 ||
    c === 0x2b ||
    c === MINUS
  );
}

/**
 * The length of the `\uXXXX` escape at `at`, 12 for a surrogate pair written as two; negative
 * for half a pair alone (or a malformed escape, 2: JSON.parse refuses it).
 */
function unicodeEscapeLength(text: string, at: number): number {
  const code = hex4(text, at + 2);
  if (code < 0xd800 || code > 0xdfff) return code < 0 ? 2 : 6;
  if (code >= 0xdc00) return -6;
  const next =
    text.charCodeAt(at + 6) === 0x5c && text.charCodeAt(at + 7) === LETTER_U
      ? hex4(text, at + 8)
      : -1;
  return next >= 0xdc00 && next <= 0xdfff ? 12 : -6;
}

/** The value of four hex digits at `at`, or -1. */
function hex4(text: string, at: number): number {
  let value = 0;
  for (let i = at; i < at + 4; i++) {
    const c = text.charCodeAt(i);
    const digit =
      c >= 0x30 && c <= 0x39
        ? c - 0x30
        : c >= 0x41 && c <= 0x46
          ? c - 0x37
          : c >= 0x61 && c <= 0x66
            ? c - 0x57
            : -1;
    if (digit < 0) return -1;
    value = value * 16 + digit;
  }
  return value;
}

function isPrototypeKeyAt(text: string, start: number, end: number, escaped: boolean): boolean {
  if (escaped) {
    // `"\u0074oString"` is `toString` to JSON.parse: decoded the same way before it is compared.
    return PROTOTYPE_KEYS.has(keyAt(text, start, -end));
  }
  return PROTOTYPE_KEY_LENGTH[end - start] === 1 && PROTOTYPE_KEYS.has(text.slice(start, end));
}

/**
 * A key's text, from its span (`end` negative for one with escapes, decoded as JSON.parse
 * will; a bad escape gives '', and JSON.parse fails on it).
 */
function keyAt(text: string, start: number, end: number): string {
  if (end >= 0) return text.slice(start, end);
  try {
    return JSON.parse(text.slice(start - 1, -end + 1)) as string;
  } catch {
    return '';
  }
}

/** The path to the current place, built only when a problem is found. */
function stepsTo(
  text: string,
  depth: number,
  items: readonly number[],
  keyStart: readonly number[],
  keyEnd: readonly number[],
): JsonStep[] {
  const steps: JsonStep[] = [];
  for (let level = 1; level <= depth; level++) {
    const item = items[level]!;
    steps.push(item >= 0 ? item : keyAt(text, keyStart[level]!, keyEnd[level]!));
  }
  return steps;
}
