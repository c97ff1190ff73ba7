import { randomUUID } from 'node:crypto';
import { operationOutcome, type OperationOutcome } from '../../common/errors/operation-outcome.js';
import { entries } from '../bundle.js';
import type { CursorCodec } from '../cursor.js';
import type { FhirResource } from '../fhir-types.js';
import type { ResourceEntity } from '../resource.entity.js';
import { parseStored } from '../stored-json.js';
import { withoutWriteOnly } from '../write-only-elements.js';

// What a search answers: the searchset Bundle, its page links and the cursors they carry.

export interface SearchBundle {
  resourceType: 'Bundle';
  id: string;
  meta: { lastUpdated: string };
  type: 'searchset';
  total?: number;
  link: { relation: string; url: string }[];
  entry?: (
    | { fullUrl: string; resource: FhirResource; search: { mode: 'match' | 'include' } }
    | { resource: OperationOutcome; search: { mode: 'outcome' } }
  )[];
}

export interface Cursor {
  /** n: the page after the row with these keys; p: the page before it. */
  d: 'n' | 'p';
  k: string[];
  /**
   * A `_lastUpdated` search's first page's instant (ISO), which every later page says too:
   * a resource updated while a client pages sorts where its page has gone by, so a later
   * page that said its own instant had a poll from it skip that update (until 2026-12-07).
   */
  c?: string;
}

/** A search's page links: its criteria in the URL, the page's keys sealed in `_cursor`. */
export function pageLinks(
  baseUrl: string,
  path: string,
  query: Record<string, string | string[] | undefined>,
  next: Cursor | undefined,
  previous: Cursor | undefined,
  cursors: CursorCodec,
): { relation: string; url: string }[] {
  const url = (cursor?: Cursor): string => {
    const search = new URLSearchParams();
    for (const [name, value] of Object.entries(query)) {
      if (name === '_cursor' || value === undefined) continue;
      for (const item of Array.isArray(value) ? value : [value]) search.append(name, item);
    }
    if (cursor) search.set('_cursor', cursors.seal(cursor));
    const text = search.toString();
    return `${baseUrl}/${path}${text ? `?${text}` : ''}`;
  };
  const self =
    typeof query['_cursor'] === 'string'
      ? `${url()}${url().includes('?') ? '&' : '?'}_cursor=${encodeURIComponent(query['_cursor'])}`
      : url();
  return [
    { relation: 'self', url: self },
    ...(next ? [{ relation: 'next', url: url(next) }] : []),
    ...(previous ? [{ relation: 'previous', url: url(previous) }] : []),
  ];
}

export function searchBundle(
  matches: FhirResource[],
  included: FhirResource[],
  total: number | undefined,
  link: { relation: string; url: string }[],
  warnings: ReadonlySet<string>,
  complete: Date,
  baseUrl = '',
): SearchBundle {
  const entry = (resource: FhirResource, mode: 'match' | 'include') => ({
    fullUrl: `${baseUrl}/${resource.resourceType}/${String(resource.id)}`,
    resource,
    search: { mode },
  });
  return {
    resourceType: 'Bundle',
    id: randomUUID(),
    meta: { lastUpdated: complete.toISOString() },
    type: 'searchset',
    ...(total !== undefined ? { total } : {}),
    link,
    ...entries([
      ...matches.map((r) => entry(r, 'match')),
      ...included.map((r) => entry(r, 'include')),
      // FHIR's place for what a client should know about how its search was answered.
      ...(warnings.size > 0
        ? [
            {
              resource: operationOutcome(
                [...warnings].map((diagnostics) => ({
                  severity: 'warning' as const,
                  code: 'informational' as const,
                  diagnostics,
                })),
              ),
              search: { mode: 'outcome' as const },
            },
          ]
        : []),
    ]),
  };
}

/**
 * A matched resource as the Bundle shows it (write-only values masked). Not to be changed: the
 * Bundle is sent with the stored text (a changed copy is serialized, see stored-json.ts).
 */
export function contentOf(row: ResourceEntity): FhirResource {
  return withoutWriteOnly(parseStored<FhirResource>(row.content as string));
}

/** The cursor of a search whose sort has `keys` keys. */
export function isSearchCursor(keys: number) {
  return (value: unknown): value is Cursor => {
    const cursor = value as Partial<Cursor> | null;
    return (
      typeof cursor === 'object' &&
      cursor !== null &&
      (cursor.d === 'n' || cursor.d === 'p') &&
      Array.isArray(cursor.k) &&
      cursor.k.length === keys &&
      cursor.k.every((key) => typeof key === 'string' && key.length <= 1000) &&
      (cursor.c === undefined ||
        (typeof cursor.c === 'string' && !Number.isNaN(Date.parse(cursor.c))))
    );
  };
}
