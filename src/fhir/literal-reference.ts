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
  id: string;
  /** After a base URL: a resource of that server, which may be this one or another. */
  absolute: boolean;
}

export function literalReference(reference: string): LiteralReference | undefined {
  const match = LITERAL.exec(reference);
  return match ? { type: match[2]!, id: match[3]!, absolute: match[1] !== undefined } : undefined;
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
