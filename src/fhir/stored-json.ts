import { randomUUID } from 'node:crypto';

/**
 * Resources parsed from the JSON text the store holds, kept with that text, so that a Bundle's
 * entries go out as the stored text rather than serialized again: on a page of search results,
 * serializing the entries was a sixteenth of the request's CPU. Only what nobody changed may be
 * sent so: whoever changes such a resource copies it first (as `withoutWriteOnly` and `_elements`
 * do), and a copy has no text.
 */
const texts = new WeakMap<object, string>();

/** Unguessable, so no value a client sent (a search URL in the links) can stand for it. */
const MARK = `stored-json:${randomUUID()}`;
const QUOTED_MARK = JSON.stringify(MARK);

/** Parses a stored resource, remembering its text: the result is not to be changed. */
export function parseStored<T extends object>(text: string): T {
  const value = JSON.parse(text) as T;
  texts.set(value, text);
  return value;
}

/**
 * The JSON of a response body: JSON.stringify's, except that the entries of a Bundle whose
 * resource was parsed by `parseStored` hold its stored text. The same JSON value either way.
 */
export function fhirJson(payload: unknown): string {
  const entries = (payload as { entry?: unknown } | null)?.entry;
  if (!Array.isArray(entries) || !entries.some((entry) => textOf(entry) !== undefined)) {
    return JSON.stringify(payload);
  }
  const body = entries.map((entry: unknown) => {
    const text = textOf(entry);
    if (text === undefined) return JSON.stringify(entry);
    return splice(JSON.stringify({ ...(entry as object), resource: MARK }), text);
  });
  return splice(JSON.stringify({ ...(payload as object), entry: MARK }), `[${body.join(',')}]`);
}

function textOf(entry: unknown): string | undefined {
  const resource = (entry as { resource?: unknown } | null)?.resource;
  return typeof resource === 'object' && resource !== null ? texts.get(resource) : undefined;
}

function splice(json: string, text: string): string {
  const at = json.indexOf(QUOTED_MARK);
  return json.slice(0, at) + text + json.slice(at + QUOTED_MARK.length);
}
