/**
 * R4's literal reference to a resource (references.html): `Type/id` or one version of it
 * (`Type/id/_history/vid`), relative, or after the base URL of a FHIR server. The one reading
 * the search index (compartments, chains, referential integrity) and the access check share:
 * they read `Patient/1/_history/Patient/2` as two different patients, so $everything counted
 * for one what the access check gave the other.
 */
const LITERAL =
  /^([a-z][a-z0-9+.-]*:\/\/.*\/)?([A-Z][A-Za-z]+)\/([A-Za-z0-9.-]{1,64})(?:\/_history\/[A-Za-z0-9.-]{1,64})?$/;

/**
 * A conditional reference (`Patient?identifier=…`), which a transaction resolves: a type, then
 * the query, as conditional-references.ts reads it. `Patient/1?x=1` and `Patient?` are none
 * (they were stored until 2026-12-07, naming nothing).
 */
const CONDITIONAL = /^[A-Z][A-Za-z]{0,63}\?./s;

/** What a reference names that is none of those: `urn:uuid:…`, `urn:oid:…`, `mailto:`… */
const OTHER_URI = /^[A-Za-z][A-Za-z0-9+.-]*:/;

export interface LiteralReference {
  type: string;
  /** The id; for another server's resource, its URL (`https://other.example/fhir/Patient/1`). */
  id: string;
  /** After a base URL: a resource of that server, which may be this one or another. */
  absolute: boolean;
  /** After a base URL that is not this server's: never a resource stored here. */
  foreign: boolean;
}

/**
 * This server's host (`ehr.example.org`, with a port other than the scheme's), whose `/fhir/`
 * is this server's base under http or https, from PUBLIC_URL. Unknown without it: an absolute
 * URL may then be this server's under any name clients reach it by, and is read by its type
 * and id. Process-wide, as PUBLIC_URL is: set once at start (OwnFhirBase), so that the index,
 * the compartment, the access check and the search read a reference alike, pure functions
 * among them (plain-paths) which no provider reaches.
 */
let ownHost: string | undefined;

/**
 * The longest URL another server's reference may have, in bytes: it is an index key, which
 * PostgreSQL's btree cannot hold past a third of a page. Longer, it is read as no reference.
 */
const FOREIGN_URL_MAX_BYTES = 1024;

export function setOwnFhirBase(publicUrl: string | undefined): void {
  ownHost = publicUrl ? new URL(publicUrl).host : undefined;
}

/** This server's host as references are read by (from PUBLIC_URL), or undefined without it. */
export function ownFhirHost(): string | undefined {
  return ownHost;
}

export function literalReference(reference: string): LiteralReference | undefined {
  const match = LITERAL.exec(reference);
  if (!match) return undefined;
  const [, base, type, id] = match as unknown as [string, string | undefined, string, string];
  if (base === undefined || ownHost === undefined) {
    return { type, id, absolute: base !== undefined, foreign: false };
  }
  const url = normalizedBase(base);
  if (url?.host === ownHost && url.pathname === '/fhir/') {
    return { type, id, absolute: true, foreign: false };
  }
  // Another server's Patient/1 is not this one's: it keeps its whole URL (without a version),
  // its scheme and host as URL writes them, so that any spelling of it finds it.
  const whole = `${url ? `${url.protocol}//${url.host}${url.pathname}` : base}${type}/${id}`;
  if (Buffer.byteLength(whole) > FOREIGN_URL_MAX_BYTES) return undefined;
  return { type, id: whole, absolute: true, foreign: true };
}

/**
 * Whether a literal reference surely names a resource of this server, which referential
 * integrity then holds it to: a relative one, or with PUBLIC_URL set one under this server's
 * base (HAPI's "treat base URLs as local"). Without PUBLIC_URL an absolute URL may be another
 * server's, and is not checked.
 */
export function isOwnResource(literal: LiteralReference): boolean {
  return !literal.absolute || (ownHost !== undefined && !literal.foreign);
}

/** Whether a reference is an absolute URL (`https://…`), which literalReference may refuse. */
export function isAbsoluteUrl(reference: string): boolean {
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(reference);
}

/**
 * An http(s) base as URL reads it (host lower-cased, a default port dropped): this server's
 * under either scheme, as a TLS proxy may have given clients one or the other; undefined for
 * one URL cannot read.
 */
function normalizedBase(base: string): URL | undefined {
  try {
    const url = new URL(base);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Whether a reference is relative and not R4's `Type/id[/_history/vid]` (references.html: a
 * relative reference SHALL match it). Contained (`#id`), conditional (`Type?criteria`, which a
 * transaction resolves) and other URIs are not relative references.
 */
export function isMalformedRelative(reference: string): boolean {
  return (
    !reference.startsWith('#') &&
    !CONDITIONAL.test(reference) &&
    !OTHER_URI.test(reference) &&
    !LITERAL.test(reference)
  );
}
