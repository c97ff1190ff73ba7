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
 * What `If-Match` asks of the current version: that number, or `*`, that there is one (RFC
 * 9110 §13.1.1: an update or patch that never creates, a delete of what is not deleted).
 */
export type IfMatch = number | '*';

/** An entity-tag (RFC 9110 §8.8.3): weak or strong, its opaque value in double quotes. */
const ENTITY_TAG = /^(?:W\/)?"([\x21\x23-\x7e\x80-\xff]*)"$/;

/**
 * `If-Match: W/"3"` (or `"3"`, or `3`, as clients also send it) to 3, `*` to `*`. A header that
 * is no entity-tag is a 400 naming it: the request is malformed, where a 412 told the client a
 * version had moved on. An entity-tag that names no version here (`W/"abc"`) can never match:
 * a 412, as a stale one.
 */
export function parseIfMatch(header: string | undefined): IfMatch | undefined {
  if (header === undefined) {
    return undefined;
  }
  const value = header.trim();
  if (value === '*') {
    return '*';
  }
  const tag = ENTITY_TAG.exec(value)?.[1] ?? (/^\d+$/.test(value) ? value : undefined);
  if (tag === undefined) {
    throw AppError.invalid(
      'The If-Match header must be one version ETag such as W/"1" (or *); this one is malformed',
    );
  }
  if (!/^\d{1,10}$/.test(tag)) {
    throw AppError.preconditionFailed('If-Match names no version of this resource');
  }
  return Number(tag);
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
  if (expected !== undefined && (!current || current.deleted || current.versionId !== expected)) {
    throw AppError.preconditionFailed('If-Match does not match the current version');
  }
}
