import { AppError } from '../../common/errors/app-error.js';
import { splitCascade } from '../cascade-delete.js';
import { conditionalReferences } from '../conditional-references.js';
import type { ParsedEntry } from './bundle-entry.js';

// A transaction's plan before it runs: the ids its creates will get, the checks that refuse a
// Bundle whose entries collide, and the order its writes take their locks in.

export interface Planned {
  id: string;
  existing: boolean;
}

/**
 * Every conditional criteria an entry resolves under their lock (see
 * CriteriaMatches.lockCriteria).
 */
export function conditionalCriteria(entry: ParsedEntry): { type: string; criteria: string }[] {
  const own =
    entry.method === 'POST'
      ? entry.ifNoneExist
      : entry.method === 'DELETE'
        ? splitCascade(entry.query ?? '').criteria
        : entry.method === 'GET'
          ? undefined
          : entry.query;
  return [
    ...(own ? [{ type: entry.type, criteria: own }] : []),
    ...conditionalReferences(entry.resource).map(({ type, criteria }) => ({ type, criteria })),
  ];
}

export function isDeleteById(entry: ParsedEntry): boolean {
  return (
    entry.method === 'DELETE' &&
    entry.id !== undefined &&
    splitCascade(entry.query ?? '').criteria === ''
  );
}

/** FHIR's bdl-7: each entry's fullUrl is its own, or references to it would be ambiguous. */
export function assertDistinctFullUrls(entries: ParsedEntry[]): void {
  const first = new Map<string, number>();
  for (const entry of entries) {
    if (entry.fullUrl === undefined) continue;
    const earlier = first.get(entry.fullUrl);
    if (earlier !== undefined) {
      throw AppError.invalid(
        `Bundle.entry[${entry.index}].fullUrl is also the fullUrl of Bundle.entry[${earlier}]: each entry needs its own`,
      );
    }
    first.set(entry.fullUrl, entry.index);
  }
}

/**
 * A transaction changes each resource once: FHIR fails one whose deletes, creates, updates and
 * patches overlap (`DELETE Patient/1` with `PUT Patient/1`, or two updates of it), which
 * otherwise would silently apply in an order the client did not choose. A conditional create
 * that matched writes nothing; a conditional delete counts for its match.
 */
export function assertEachChangedOnce(
  entries: ParsedEntry[],
  planned: ReadonlyMap<number, Planned>,
): void {
  const changed = new Map<string, number>();
  for (const entry of entries) {
    const target = planned.get(entry.index);
    const id =
      entry.method === 'POST'
        ? target?.existing
          ? undefined
          : target?.id
        : entry.method === 'PUT' || entry.method === 'PATCH'
          ? (target?.id ?? entry.id)
          : entry.method === 'DELETE'
            ? (target?.id ?? (isDeleteById(entry) ? entry.id : undefined))
            : undefined;
    if (id === undefined) continue;
    const key = `${entry.type}/${id}`;
    const earlier = changed.get(key);
    if (earlier !== undefined) {
      throw AppError.invalid(
        `Bundle.entry[${entry.index}] and Bundle.entry[${earlier}] both change ${key}: a transaction changes each resource once`,
      );
    }
    changed.set(key, entry.index);
  }
}

const PLACEHOLDER = /urn(?::|%3A)uuid(?::|%3A)[0-9A-Fa-f-]{36}/gi;

/**
 * An entry whose conditional URL (request.url's query, ifNoneExist) names the fullUrl of an
 * entry processed before it (`urn:uuid:…`), with that entry's `Type/id` in its place; an entry
 * naming none is returned as it is. A placeholder of an entry not processed yet is left, and
 * refused as a reference search value like any other.
 */
export function withPlaceholdersReplaced(
  entry: ParsedEntry,
  references: ReadonlyMap<string, string>,
): ParsedEntry {
  const replaced = (text: string | undefined): string | undefined =>
    text?.replace(
      PLACEHOLDER,
      (placeholder) => references.get(placeholder.replace(/%3A/gi, ':')) ?? placeholder,
    );
  const query = replaced(entry.query);
  const ifNoneExist = replaced(entry.ifNoneExist);
  if (query === entry.query && ifNoneExist === entry.ifNoneExist) return entry;
  return {
    ...entry,
    ...(query !== undefined ? { query } : {}),
    ...(ifNoneExist !== undefined ? { ifNoneExist } : {}),
  };
}

/** A body without an id gets the planned one; one naming its own is checked as sent. */
export function withPlannedId(body: unknown, planned: Planned | undefined): unknown {
  if (!planned || typeof body !== 'object' || body === null || Array.isArray(body)) return body;
  return 'id' in body ? body : { ...body, id: planned.id };
}

/**
 * The resource an entry writes (its row is locked until commit), or '' for a read. Writes of
 * one method go in this order, not the Bundle's: two transactions changing the same resources
 * in different orders took their row locks crosswise and deadlocked (18 of 20 such Bundles run
 * at once were a 503). The order within a method means nothing else: each resource is changed
 * once per Bundle and references are checked at commit.
 */
export function lockTarget(entry: ParsedEntry, planned: ReadonlyMap<number, Planned>): string {
  if (entry.method === 'GET') return '';
  return `${entry.type}/${planned.get(entry.index)?.id ?? entry.id ?? ''}`;
}

/** Code-unit order: the same in every process, whatever the locale. */
export function compareTargets(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
