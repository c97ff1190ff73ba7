import secureJson from 'secure-json-parse';
import { AppError } from '../errors/app-error.js';

/**
 * The deepest nesting a request body may have. FHIR resources nest about 12 levels at most in
 * practice (a Bundle entry's Questionnaire item tree is the deepest we have seen); 64 leaves room
 * and stops bodies built to exhaust the parser's or validator's stack.
 */
export const MAX_JSON_DEPTH = 64;

/**
 * Parses a JSON request body: refuses excessive nesting before parsing (a linear scan, so a
 * deep body costs no recursion), and refuses `__proto__` and `constructor.prototype` keys, which
 * would otherwise reach code that merges objects (prototype poisoning).
 */
export function parseJsonBody(text: string): unknown {
  if (exceedsDepth(text, MAX_JSON_DEPTH)) {
    throw AppError.of(400, 'too-long', `JSON nesting deeper than ${MAX_JSON_DEPTH} levels`);
  }
  if (text.trim().length === 0) {
    throw AppError.of(400, 'structure', 'The request body is empty');
  }
  try {
    return secureJson.parse(text, undefined, {
      protoAction: 'error',
      constructorAction: 'error',
    });
  } catch (error) {
    if (error instanceof SyntaxError && /prototype|constructor/i.test(error.message)) {
      throw AppError.of(400, 'security', 'JSON keys __proto__ and constructor are not accepted');
    }
    // The parser's message quotes the body around the error: never echo it (PHI).
    throw AppError.of(400, 'structure', 'The request body is not valid JSON');
  }
}

/** True when brackets nest deeper than `max`, ignoring brackets inside strings. */
export function exceedsDepth(text: string, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c)
        i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) {
      inString = true;
    } else if (c === 0x7b || c === 0x5b) {
      if (++depth > max) return true;
    } else if (c === 0x7d || c === 0x5d) {
      depth--;
    }
  }
  return false;
}
