import { AppError } from '../../common/errors/app-error.js';
import type { ParsedEntry } from './bundle-entry.js';
import type { EntryResult } from './entry-results.js';

/** Ids of at most `limit` live resources of the type that match the criteria. */
export type MatchingIds = (type: string, criteria: string, limit: number) => Promise<string[]>;

/**
 * By entry index, for each conditional create (`ifNoneExist`) or conditional update that
 * created a resource of a type the Bundle created two or more of: the id it created, and the
 * ids its criteria find once every entry is written (at most one more than the Bundle created
 * of the type, so that another entry's record is among them whatever else matches).
 */
export type CreatedMatches = ReadonlyMap<number, { own: string; ids: readonly string[] }>;

/**
 * Searches each such entry's criteria again, once written (see assertCreatedOnce). Every
 * conditional entry searched before any create was written, so criteria written in other forms
 * (`identifier=sys|v` and `identifier=v`), or a plain create of the same patient beside a
 * conditional one, each made a record: two records of one patient where entries run one after
 * the other would have made one. Only a type the Bundle created two of is searched again.
 */
export async function createdMatches(
  entries: readonly ParsedEntry[],
  results: readonly EntryResult[],
  matchingIds: MatchingIds,
): Promise<CreatedMatches> {
  const perType = new Map<string, number>();
  for (const entry of entries) {
    if (createdId(results[entry.index]) === undefined) continue;
    perType.set(entry.type, (perType.get(entry.type) ?? 0) + 1);
  }
  const found = new Map<number, { own: string; ids: string[] }>();
  for (const entry of [...entries].sort((a, b) => a.index - b.index)) {
    const criteria =
      entry.method === 'POST'
        ? entry.ifNoneExist
        : entry.method === 'PUT'
          ? entry.query
          : undefined;
    const count = perType.get(entry.type) ?? 0;
    const own = createdId(results[entry.index]);
    if (criteria === undefined || own === undefined || count < 2) continue;
    found.set(entry.index, { own, ids: await matchingIds(entry.type, criteria, count + 1) });
  }
  return found;
}

/**
 * Whether the entry's criteria, searched again by createdMatches, found what it created: then
 * they find it (assertMatchesOwnCriteria need not search them restricted to its id). Not
 * found says nothing: the search may have been cut by its limit before reaching it.
 */
export function foundOwn(found: CreatedMatches, index: number): boolean {
  const matches = found.get(index);
  return matches !== undefined && matches.ids.includes(matches.own);
}

/**
 * Fails a transaction in which a conditional create or a conditional update that created
 * matches, once written, a resource another entry created (createdMatches), naming the first
 * such entry in Bundle order.
 */
export function assertCreatedOnce(
  entries: readonly ParsedEntry[],
  results: readonly EntryResult[],
  found: CreatedMatches,
): void {
  const creators = new Map<string, number>();
  for (const entry of entries) {
    const id = createdId(results[entry.index]);
    if (id !== undefined) creators.set(`${entry.type}/${id}`, entry.index);
  }
  for (const entry of [...entries].sort((a, b) => a.index - b.index)) {
    const matches = found.get(entry.index);
    if (matches === undefined) continue;
    const other = matches.ids
      .filter((id) => id !== matches.own)
      .map((id) => creators.get(`${entry.type}/${id}`))
      .find((index) => index !== undefined);
    if (other !== undefined) {
      throw AppError.preconditionFailed(
        `Bundle.entry[${entry.index}]: its conditional criteria also match the ${entry.type} that Bundle.entry[${other}] creates: the transaction would make two of what the criteria describe as one (give both entries the same criteria, and the second stands for the first)`,
      );
    }
  }
}

/** The id of what the entry created (a 201), if it did. */
function createdId(result: EntryResult | undefined): string | undefined {
  if (!result?.response.status.startsWith('201')) return undefined;
  const id = (result.resource as { id?: unknown } | undefined)?.id;
  return typeof id === 'string' ? id : undefined;
}
