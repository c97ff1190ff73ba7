import { AppError } from '../../common/errors/app-error.js';
import type { ParsedEntry } from './bundle-entry.js';
import type { EntryResult } from './entry-results.js';

/** Ids of at most `limit` live resources of the type that match the criteria. */
export type MatchingIds = (type: string, criteria: string, limit: number) => Promise<string[]>;

/**
 * Fails a transaction in which a conditional create (`ifNoneExist`) or a conditional update
 * that created matches, once written, a resource another entry created. Every conditional
 * entry searched before any create was written, so criteria written in other forms
 * (`identifier=sys|v` and `identifier=v`), or a plain create of the same patient beside a
 * conditional one, each made a record: two records of one patient where entries run one after
 * the other would have made one. Only a type the Bundle created two of is searched again.
 */
export async function assertCreatedOnce(
  entries: readonly ParsedEntry[],
  results: readonly EntryResult[],
  matchingIds: MatchingIds,
): Promise<void> {
  const creators = new Map<string, number>();
  const perType = new Map<string, number>();
  for (const entry of entries) {
    const id = createdId(results[entry.index]);
    if (id === undefined) continue;
    creators.set(`${entry.type}/${id}`, entry.index);
    perType.set(entry.type, (perType.get(entry.type) ?? 0) + 1);
  }
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
    const ids = await matchingIds(entry.type, criteria, count + 1);
    const other = ids
      .filter((id) => id !== own)
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
