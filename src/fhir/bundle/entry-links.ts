import '../websocket-shim.js';
import { tryGetDataType, type InternalTypeSchema } from '@medplum/core';

/** The element types whose values FHIR's transaction rules rewrite besides references. */
const LINK_TYPES = new Set(['uri', 'url', 'oid', 'uuid']);

/** `href="…"` and `src="…"` in a narrative's XHTML. */
const NARRATIVE_LINK = /\b(href|src)(\s*=\s*)(["'])([^"']*)\3/g;

/**
 * Whether a value may stand for another entry outside a Reference: a placeholder
 * (`urn:uuid:…`) or an absolute fullUrl. Not a `urn:oid:`, which a uri element such as
 * `Identifier.system` holds as a naming authority, the same OID an Organization entry of a
 * converted CDA document may have as its fullUrl; nor a conditional reference (`Type?…`).
 */
export function isEntryLink(value: string): boolean {
  return value.startsWith('urn:uuid:') || /^https?:\/\//.test(value);
}

/** Whether a narrative links to one of the Bundle's entries. */
export function narrativeLinks(div: string, ids: ReadonlyMap<string, string>): boolean {
  if (!div.includes('href') && !div.includes('src')) return false;
  for (const match of div.matchAll(NARRATIVE_LINK)) {
    if (narrativeTarget(match[4]!, ids) !== undefined) return true;
  }
  return false;
}

/** What a narrative's link to an entry's fullUrl (a urn:oid one too) becomes. */
function narrativeTarget(link: string, ids: ReadonlyMap<string, string>): string | undefined {
  return isEntryLink(link) || link.startsWith('urn:oid:') ? ids.get(link) : undefined;
}

/**
 * Replaces the fullUrls of other entries in a resource's uri, url, oid and uuid elements and in
 * `<a href>` and `<img src>` of its narratives with `Type/id` of what the transaction wrote, as
 * FHIR R4's transaction rules say (http.html#trules): an IHE MHD DocumentReference finds its
 * Binary by `content.attachment.url`. Canonicals and strings keep their value (`Identifier.value`
 * may be a document's own urn:uuid). Runs only on a resource that holds such a value (see
 * resolveEntry), since it walks the resource with its type's definition. Changes `resource` in
 * place: it is the copy that resolveReferences made.
 */
export function replaceEntryLinks(resource: unknown, ids: ReadonlyMap<string, string>): void {
  const type = (resource as { resourceType?: unknown } | null)?.resourceType;
  if (typeof type === 'string') walk(resource as Record<string, unknown>, type, ids);
}

function walk(
  object: Record<string, unknown>,
  typeName: string,
  ids: ReadonlyMap<string, string>,
): void {
  const schema = tryGetDataType(typeName);
  if (!schema) return;
  for (const key of Object.keys(object)) {
    // A Bundle resource (a document) keeps its entries as they are (see isBundle).
    if (typeName === 'Bundle' && key === 'entry') continue;
    const code = typeOf(schema, key);
    if (code === undefined) continue;
    const value = object[key];
    if (Array.isArray(value)) {
      value.forEach((item, index) => {
        value[index] = visit(item, code, ids);
      });
    } else {
      object[key] = visit(value, code, ids);
    }
  }
}

function visit(value: unknown, code: string, ids: ReadonlyMap<string, string>): unknown {
  if (typeof value === 'string') {
    if (LINK_TYPES.has(code)) {
      return isEntryLink(value) ? (ids.get(value) ?? value) : value;
    }
    if (code === 'xhtml') {
      return value.replace(
        NARRATIVE_LINK,
        (whole, name: string, equals: string, quote: string, link: string) => {
          const target = narrativeTarget(link, ids);
          return target === undefined ? whole : `${name}${equals}${quote}${target}${quote}`;
        },
      );
    }
    return value;
  }
  if (typeof value === 'object' && value !== null) {
    const object = value as Record<string, unknown>;
    const nested = code === 'Resource' ? object.resourceType : code;
    if (typeof nested === 'string') walk(object, nested, ids);
  }
  return value;
}

/** The type of an element of a type (`valueUri` of Extension is a uri), or undefined. */
function typeOf(schema: InternalTypeSchema, key: string): string | undefined {
  const element = schema.elements[key];
  if (element) return element.type[0]?.code;
  for (const [name, choice] of Object.entries(schema.elements)) {
    if (!name.endsWith('[x]')) continue;
    const prefix = name.slice(0, -3);
    if (!key.startsWith(prefix)) continue;
    const suffix = key.slice(prefix.length);
    const code = choice.type.find(
      (type) => type.code.charAt(0).toUpperCase() + type.code.slice(1) === suffix,
    )?.code;
    if (code !== undefined) return code;
  }
  return undefined;
}
