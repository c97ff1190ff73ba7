import { AppError } from '../errors/app-error.js';

/** Query parameters by name, a repeated name as a list, as a controller's @Query() gives them. */
export type QueryRecord = Record<string, string | string[]>;

/**
 * A query string or form body as a record. The record has no prototype: a parameter named
 * `constructor` or `toString` is a parameter like any other, where on a plain `{}` it was found
 * "already set" (to the inherited function) and became a list, and `__proto__` replaced the
 * record's prototype, so that the parameter vanished. Badly percent-encoded text is a 400.
 */
export function queryRecord(text: string): QueryRecord {
  assertWellEncoded(text);
  const record = Object.create(null) as QueryRecord;
  for (const [name, value] of new URLSearchParams(text)) appendValue(record, name, value);
  return record;
}

/**
 * Adds a value under its name: text the first time, then a list that grows in place. Until
 * 2026-12-07 each repeat copied the list before it, and a form of 150,000 repeats (0.9 MB, under
 * the body limit) held the event loop for minutes, every request and /health behind it.
 */
export function appendValue(
  record: Record<string, string | string[] | undefined>,
  name: string,
  value: string,
): void {
  const previous = record[name];
  if (previous === undefined) record[name] = value;
  else if (Array.isArray(previous)) previous.push(value);
  else record[name] = [previous, value];
}

/**
 * 400 unless each `%` of a query string or form starts a `%XX` escape and the escapes spell
 * UTF-8 (RFC 3986, the WHATWG URL standard). Decoders replace what they cannot read, or keep it
 * as it is: `family=M%FCller` (Latin-1) was searched for the text `%FC`, or for U+FFFD.
 */
export function assertWellEncoded(text: string): void {
  if (!text.includes('%')) return;
  try {
    decodeURIComponent(text);
  } catch {
    throw AppError.invalid(
      'The query or form is not well percent-encoded: each % starts a %XX escape of UTF-8 ' +
        '(ü is %C3%BC, and % itself %25)',
    );
  }
}
