import { isDeepStrictEqual } from 'node:util';
import { AppError } from '../common/errors/app-error.js';
import type { FhirResource, ResourceVersion, StoredResource } from './fhir-types.js';
import type { ResourceHistoryEntity } from './resource-history.entity.js';
import type { ResourceEntity } from './resource.entity.js';
import type { NextVersion } from './resource.repository.js';
import { withoutWriteOnly } from './write-only-elements.js';

/*
 * Stored versions as FhirService reads and writes them: the content with the server's fields,
 * as shown or kept, and how a write is compared with the current version.
 */

/**
 * A history entry: a deletion has no resource. `recreated`: the versions that follow a deletion
 * (ResourceRepository.recreations).
 */
export function toVersion(row: ResourceHistoryEntity, recreated: Set<string>): ResourceVersion {
  return {
    resourceType: row.resourceType,
    id: row.id,
    versionId: row.versionId,
    lastUpdated: row.lastUpdated,
    resource: row.deleted ? undefined : withoutWriteOnly(parseContent(row)),
    ...(row.method ? { method: row.method } : {}),
    ...(recreated.has(`${row.resourceType}/${row.id}/${row.versionId}`) ? { recreated: true } : {}),
  };
}

/** The stored resource: the client's resource with the server's id and meta. */
export function withServerFields(
  resource: FhirResource,
  id: string,
  next: NextVersion,
): FhirResource {
  const meta = {
    ...(resource.meta ?? {}),
    versionId: String(next.versionId),
    lastUpdated: next.lastUpdated.toISOString(),
  };
  return { ...resource, id, meta };
}

/**
 * Whether a write would store what is stored: only the version's id and time would differ. Such
 * an update or patch (a client syncing, a retried PUT) makes no version, tells no listener and
 * answers with the current version, as HAPI and Medplum do.
 */
export function sameContent(resource: FhirResource, current: FhirResource): boolean {
  return isDeepStrictEqual(withoutVersionMeta(resource), withoutVersionMeta(current));
}

function withoutVersionMeta(resource: FhirResource): FhirResource {
  const { meta, ...rest } = resource;
  const kept = { ...meta };
  delete kept.versionId;
  delete kept.lastUpdated;
  return Object.keys(kept).length > 0 ? { ...rest, meta: kept } : rest;
}

export function parseContent(row: Pick<ResourceEntity, 'content'>): FhirResource {
  return JSON.parse(row.content as string) as FhirResource;
}

/** A stored resource as a response shows it (write-only values masked). */
export function shown(result: StoredResource): StoredResource {
  return { ...result, resource: withoutWriteOnly(result.resource) };
}

/** A stored resource as it is, for the write's listeners and checks: never sent as is. */
export function stored(row: ResourceEntity | ResourceHistoryEntity): StoredResource {
  return {
    resourceType: row.resourceType,
    id: row.id,
    versionId: row.versionId,
    lastUpdated: row.lastUpdated,
    resource: parseContent(row),
  };
}

/**
 * What `If-Match` asks of the current version: to be one of these numbers, or `*`, that there
 * is one (RFC 9110 §13.1.1: an update or patch that never creates, a delete of what is not
 * deleted).
 */
export type IfMatch = readonly number[] | '*';

/**
 * One element of an If-Match list (RFC 9110 §13.1.1, §5.6.1.2): an entity-tag (§8.8.3, weak or
 * strong, its opaque value in double quotes, where a comma may be), or nothing (empty elements
 * are allowed); then a comma or the end.
 */
const LIST_ELEMENT = /[\t ]*(?:(?:W\/)?"([\x21\x23-\x7e\x80-\xff]*)")?[\t ]*(,|$)/y;

/**
 * `If-Match: W/"3"` (or `"3"`, or `3` alone, as clients also send it) to [3], a list
 * (`W/"1", W/"2"`) to each version it names, `*` to `*`. A header that is no list of entity-tags is a 400 naming it: the request is
 * malformed, where a 412 told the client a version had moved on. An entity-tag that names no
 * version here (`W/"abc"`) can never match: a list of only such tags is a 412, as a stale one.
 * Until 2026-12-07 a list was a 400, where RFC 9110 has the condition hold when any tag matches.
 */
export function parseIfMatch(header: string | undefined): IfMatch | undefined {
  if (header === undefined) {
    return undefined;
  }
  const value = header.trim();
  if (value === '*') {
    return '*';
  }
  const tags = /^\d+$/.test(value) ? [value] : entityTags(header);
  if (tags === undefined || tags.length === 0) {
    throw AppError.invalid(
      'The If-Match header must be * or version ETags such as W/"1", W/"2"; this one is malformed',
    );
  }
  // Compared as written (RFC 9110 §8.8.3.2): W/"02" is no ETag of version 2, which is W/"2".
  const versions = tags.filter((tag) => /^[1-9]\d{0,9}$/.test(tag)).map(Number);
  if (versions.length === 0) {
    throw AppError.preconditionFailed('If-Match names no version of this resource');
  }
  return versions;
}

/** The opaque values of a list of entity-tags, or none when the header is no such list. */
function entityTags(header: string): string[] | undefined {
  const tags: string[] = [];
  LIST_ELEMENT.lastIndex = 0;
  while (LIST_ELEMENT.lastIndex < header.length) {
    const element = LIST_ELEMENT.exec(header);
    if (!element) return undefined;
    if (element[1] !== undefined) tags.push(element[1]);
    if (element[2] === '') break;
  }
  return tags;
}

/**
 * `If-None-Match` on a write (RFC 9110 §13.1.2): `*` holds only when there is no current
 * version (none yet, or deleted), so a PUT with it creates and never overwrites; a list of
 * ETags holds unless it names the current version. Failing, the write is a 412.
 */
export function assertNoneMatches(
  current: ResourceEntity | null,
  header: string | undefined,
): void {
  if (header === undefined || !current || current.deleted) {
    return;
  }
  const tags = header.split(',').map((tag) => tag.trim().replace(/^W\//, ''));
  if (tags.includes('*')) {
    throw AppError.preconditionFailed(
      `If-None-Match: * and the ${current.resourceType} exists (version ${current.versionId})`,
    );
  }
  if (tags.includes(`"${current.versionId}"`)) {
    throw AppError.preconditionFailed('If-None-Match names the current version');
  }
}

export function assertVersionMatches(
  current: ResourceEntity | null,
  expected: IfMatch | undefined,
): void {
  if (expected === '*') {
    if (!current || current.deleted) {
      throw AppError.preconditionFailed('If-Match: * and there is no current version');
    }
    return;
  }
  // A deletion is no current representation (RFC 9110 13.1.1): If-Match naming its version
  // re-created the resource until 2026-12-06, where If-Match: * refused.
  if (
    expected !== undefined &&
    (!current || current.deleted || !expected.includes(current.versionId))
  ) {
    throw AppError.preconditionFailed('If-Match does not match the current version');
  }
}
