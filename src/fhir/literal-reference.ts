/**
 * R4's literal reference to a resource (references.html): `Type/id` or one version of it
 * (`Type/id/_history/vid`), relative, or after the base URL of a FHIR server. The one reading
 * the search index (compartments, chains, referential integrity) and the access check share:
 * they read `Patient/1/_history/Patient/2` as two different patients, so $everything counted
 * for one what the access check gave the other.
 */
const LITERAL =
  /^([a-z][a-z0-9+.-]*:\/\/.*\/)?([A-Z][A-Za-z]+)\/([A-Za-z0-9.-]{1,64})(?:\/_history\/[A-Za-z0-9.-]{1,64})?$/;

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
 * This server's FHIR base as an origin and path (`https://ehr.example.org/fhir/`), from
 * PUBLIC_URL; unknown without it, when an absolute URL may be this server's under any name
 * clients reach it by, and is read by its type and id. Process-wide, as PUBLIC_URL is: set once
 * at start (OwnFhirBase) for the index, the compartment and the access check alike.
 */
let ownBase: string | undefined;

export function setOwnFhirBase(publicUrl: string | undefined): void {
  ownBase = publicUrl ? `${new URL(publicUrl).origin}/fhir/` : undefined;
}

export function literalReference(reference: string): LiteralReference | undefined {
  const match = LITERAL.exec(reference);
  if (!match) return undefined;
  const [, base, type, id] = match as unknown as [string, string | undefined, string, string];
  const foreign = base !== undefined && ownBase !== undefined && !isOwnBase(base);
  return {
    type,
    // Another server's Patient/1 is not this one's: it keeps its whole URL (without a version).
    id: foreign ? `${base}${type}/${id}` : id,
    absolute: base !== undefined,
    foreign,
  };
}

/** Whether a base is this server's: the same origin (case as URL reads it) and `/fhir/`. */
function isOwnBase(base: string): boolean {
  try {
    const url = new URL(base);
    return `${url.origin}${url.pathname}` === ownBase;
  } catch {
    return false;
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
    !reference.includes('?') &&
    !OTHER_URI.test(reference) &&
    !LITERAL.test(reference)
  );
}
