import { AppError } from '../common/errors/app-error.js';
import { criteriaQuery } from './criteria.js';

/** Ids of at most `limit` live resources of one type that match a query, as the server searches. */
export type CriteriaSearch = (query: string, limit: number) => Promise<string[]>;

/**
 * Fails a conditional create, or a conditional update, whose written resource its own criteria
 * do not find: stored, it is not what the criteria describe, so the same request sent again
 * finds nothing and stores another copy, the duplicate conditional writes exist to prevent
 * (HAPI FHIR refuses it too, HAPI-0929, a 400). The criteria are run again, in the write's
 * transaction, by the same search, restricted to the written id: blind-indexed parameters and
 * normalised values agree with what a retry would find. The caller's transaction rolls back.
 * Only on failure is each parameter searched alone, to name those the resource does not
 * satisfy; the error names parameters, never their values (an MRN, a name).
 */
export async function assertMatchesOwnCriteria(
  type: string,
  id: string,
  criteria: string,
  search: CriteriaSearch,
): Promise<void> {
  const query = criteriaQuery(type, criteria);
  if (await finds(search, query, id)) return;
  const unmatched: string[] = [];
  for (const [name, parts] of byParameter(query)) {
    if (!(await finds(search, parts.join('&'), id))) unmatched.push(name);
  }
  const named = unmatched.length > 0 ? unmatched.join(', ') : 'taken together';
  throw AppError.invalid(
    `The ${type} sent does not match its own conditional criteria (${named}): stored, the criteria would not find it, and the request sent again would store another copy. Send a resource that holds what the criteria ask for`,
    [type],
  );
}

/** Whether the query, restricted to the id, finds that resource. */
async function finds(search: CriteriaSearch, query: string, id: string): Promise<boolean> {
  const restricted = `${query}${query === '' ? '' : '&'}_id=${encodeURIComponent(id)}`;
  return (await search(restricted, 1)).includes(id);
}

/**
 * The query's `name=value` parts by parameter name (modifier included), kept as sent so that
 * each is searched exactly as in the whole query.
 */
export function byParameter(query: string): Map<string, string[]> {
  const parameters = new Map<string, string[]>();
  for (const part of query.split('&')) {
    if (part === '') continue;
    const name = decoded(part.split('=')[0]!);
    const parts = parameters.get(name);
    if (parts) parts.push(part);
    else parameters.set(name, [part]);
  }
  return parameters;
}

function decoded(name: string): string {
  try {
    return decodeURIComponent(name.replaceAll('+', ' '));
  } catch {
    return name;
  }
}
