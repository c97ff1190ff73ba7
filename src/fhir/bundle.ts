import { randomUUID } from 'node:crypto';
import type { AtPeriod, FhirResource, ResourceVersion } from './fhir-types.js';
import type { CursorCodec } from './cursor.js';

export interface Bundle {
  resourceType: 'Bundle';
  id: string;
  meta: { lastUpdated: string };
  type: 'history';
  total?: number;
  link: { relation: string; url: string }[];
  entry?: BundleEntry[];
}

interface BundleEntry {
  fullUrl: string;
  resource?: FhirResource;
  request: { method: 'POST' | 'PUT' | 'PATCH' | 'DELETE'; url: string };
  response: { status: string; etag: string; lastModified: string };
}

export type Link = Bundle['link'][number];

/**
 * A FHIR history Bundle, newest first. Its lastUpdated is `complete`, the instant up to which
 * it holds every version (ResourceRepository.completeUpTo): the `_since` of a client's next
 * poll.
 */
export function buildHistoryBundle(
  versions: ResourceVersion[],
  link: Link[],
  baseUrl: string,
  complete: Date,
  total?: number,
): Bundle {
  return {
    resourceType: 'Bundle',
    id: randomUUID(),
    meta: { lastUpdated: complete.toISOString() },
    type: 'history',
    ...(total !== undefined ? { total } : {}),
    link,
    ...entries(versions.map((version) => entryOf(version, baseUrl))),
  };
}

/**
 * A Bundle's `entry`, left out when there is none: FHIR JSON has no empty arrays (json.html),
 * and validators reject a Bundle with `"entry": []`.
 */
export function entries<T>(list: T[]): { entry?: T[] } {
  return list.length > 0 ? { entry: list } : {};
}

/** Links of a history, paged by keyset: `next` follows that version, its cursor sealed. */
export function cursorLinks<C>(
  params: { count: number; since?: Date; at?: AtPeriod[]; cursor?: C },
  selfUrl: string,
  next: C | undefined,
  cursors: CursorCodec,
): Link[] {
  const url = (cursor?: C): string => {
    const query = new URLSearchParams({ _count: String(params.count) });
    if (params.since) query.set('_since', params.since.toISOString());
    for (const at of params.at ?? []) query.append('_at', at.text);
    if (cursor) query.set('_cursor', cursors.seal(cursor));
    return `${selfUrl}?${query.toString()}`;
  };
  return [
    { relation: 'self', url: url(params.cursor) },
    ...(next ? [{ relation: 'next', url: url(next) }] : []),
  ];
}

function entryOf(version: ResourceVersion, baseUrl: string): BundleEntry {
  const url = `${version.resourceType}/${version.id}`;
  const deleted = version.resource === undefined;
  // The interaction that wrote the version; for one written before the store kept it, a first
  // version was a create, a version without content a delete, anything else an update.
  const method = version.method ?? (deleted ? 'DELETE' : version.versionId === 1 ? 'POST' : 'PUT');
  // A PUT creates when there is no resource, never written or deleted (R4 http.html: 201 for
  // an update that creates); the entry's response is the status it was answered.
  const created =
    method === 'POST' || (method === 'PUT' && (version.versionId === 1 || version.recreated));
  return {
    fullUrl: `${baseUrl}/${url}`,
    ...(version.resource ? { resource: version.resource } : {}),
    request: { method, url: method === 'POST' ? version.resourceType : url },
    response: {
      status: deleted ? '204' : created ? '201' : '200',
      etag: `W/"${version.versionId}"`,
      lastModified: version.lastUpdated.toISOString(),
    },
  };
}
