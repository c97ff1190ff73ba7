import { AppError } from '../common/errors/app-error.js';
import { unencodedPlus } from '../common/http/media-types.js';
import { decodeCursor, type CursorCodec } from './cursor.js';
import type {
  AtPeriod,
  HistoryCursor,
  HistoryListParams,
  HistoryParams,
  VersionCursor,
} from './fhir-types.js';
import { dateRange } from './search/date-range.js';

export const MAX_HISTORY_COUNT = 1000;
/** What history reads; `_format` and `_pretty` are the format's (JSON, checked elsewhere). */
const KNOWN = new Set(['_count', '_since', '_at', '_cursor', '_format', '_pretty']);
const AT_PREFIXES = ['eq', 'gt', 'ge', 'lt', 'le'] as const;

/**
 * `_count`, `_since` and `_at` of one resource's history, and the `_cursor` of its links: like a
 * type's history it pages by keyset (the last version listed), so that versions written while
 * a client pages neither repeat a version on the next page nor push one out of reach. A cursor
 * is of this resource's history only.
 */
export function historyParams(
  query: Record<string, unknown>,
  type: string,
  id: string,
  cursors: CursorCodec,
): HistoryParams {
  return keysetParams(
    query,
    (value): value is VersionCursor =>
      isVersionCursor(value) && value.type === type && value.id === id,
    cursors,
  );
}

/**
 * `_count` and `_since` of a type's or the system's history, and the `_cursor` of its links:
 * they page by keyset, so versions written while a client pages shift nothing (a sync must
 * not skip one).
 */
export function historyListParams(
  query: Record<string, unknown>,
  cursors: CursorCodec,
): HistoryListParams {
  return keysetParams(query, isHistoryCursor, cursors);
}

function keysetParams<C>(
  query: Record<string, unknown>,
  isCursor: (value: unknown) => value is C,
  cursors: CursorCodec,
): { count: number; since?: Date; at?: AtPeriod[]; cursor?: C } {
  if (query['_offset'] !== undefined) {
    throw AppError.invalid(
      'This history pages by keyset: follow its next link (_cursor) rather than _offset',
    );
  }
  checkNames(query, KNOWN, '_count, _since and _at');
  const raw = query['_cursor'];
  return {
    ...countAndSince(query),
    ...(raw !== undefined ? { cursor: decodeCursor(raw, isCursor, 'history', cursors) } : {}),
  };
}

/** `_count` (default 50, 0 to 1000), `_since` and `_at`. */
function countAndSince(query: Record<string, unknown>): {
  count: number;
  since?: Date;
  at?: AtPeriod[];
} {
  const count = integerParam(query['_count'], '_count', 50);
  const since = query['_since'] === undefined ? undefined : parseSince(query['_since']);
  const at = query['_at'] === undefined ? [] : [query['_at']].flat().map(parseAt);
  return {
    // `_count=0`: no entries (R4: a server may return fewer than asked, never more; one entry
    // and a next link came back until 2026-12-06), the instance history's total still given.
    count: Math.min(count, MAX_HISTORY_COUNT),
    ...(since ? { since } : {}),
    ...(at.length > 0 ? { at } : {}),
  };
}

/** `_at`: a date at any precision, with an optional prefix; several must all hold. */
function parseAt(raw: unknown): AtPeriod {
  const text = typeof raw === 'string' ? unencodedPlus(raw) : '';
  const prefixed = /^[a-z]{2}/.exec(text)?.[0];
  const prefix = AT_PREFIXES.find((p) => p === prefixed);
  const range = dateRange(prefix ? text.slice(2) : text);
  if ((prefixed !== undefined && prefix === undefined) || !range) {
    throw AppError.invalid(
      '_at must be a date or time such as 2024, 2024-03-01 or 2024-03-01T10:00:00Z, ' +
        'optionally prefixed by gt, ge, lt or le',
    );
  }
  return { prefix: prefix ?? 'eq', low: range.low, high: range.high, text };
}

/** Text PostgreSQL can take as a parameter: no NUL, and no longer than an id could be. */
function isKeyText(value: unknown): value is string {
  return typeof value === 'string' && value.length <= 64 && !value.includes('\0');
}

/** A version id PostgreSQL's integer column can hold (vread caps them so too). */
function isVersionId(value: unknown): value is number {
  return Number.isInteger(value) && (value as number) >= 1 && (value as number) <= 2_147_483_647;
}

/** A cursor's `complete`, if it has one: an instant. */
function isComplete(value: unknown): boolean {
  return (
    value === undefined ||
    (typeof value === 'string' && value.length <= 40 && !Number.isNaN(Date.parse(value)))
  );
}

function isVersionCursor(value: unknown): value is VersionCursor {
  const cursor = value as Partial<HistoryCursor> | null;
  return (
    typeof cursor === 'object' &&
    cursor !== null &&
    cursor.lastUpdated === undefined &&
    isKeyText(cursor.type) &&
    isKeyText(cursor.id) &&
    isVersionId(cursor.versionId) &&
    isComplete(cursor.complete)
  );
}

function isHistoryCursor(value: unknown): value is HistoryCursor {
  const cursor = value as Partial<HistoryCursor> | null;
  return (
    typeof cursor === 'object' &&
    cursor !== null &&
    typeof cursor.lastUpdated === 'string' &&
    !Number.isNaN(new Date(cursor.lastUpdated).getTime()) &&
    isKeyText(cursor.type) &&
    isKeyText(cursor.id) &&
    isVersionId(cursor.versionId) &&
    isComplete(cursor.complete)
  );
}

function checkNames(
  query: Record<string, unknown>,
  known: ReadonlySet<string>,
  hint: string,
): void {
  for (const name of Object.keys(query)) {
    if (name === '_list' || name === '_sort') {
      throw AppError.of(400, 'not-supported', `History does not support ${name}`);
    }
    if (!known.has(name)) {
      throw AppError.invalid(
        /^[A-Za-z0-9_-]{1,64}$/.test(name)
          ? `History takes ${hint}, not ${name}`
          : `History takes ${hint}`,
      );
    }
  }
}

/**
 * `_since` of history and `$everything`: one instant, or a date (its first moment, UTC). Read
 * by this pattern, not by `new Date` alone, which takes what it can guess: `1` was 2001, a
 * time without a zone was the server's local time, `2020-02-30` was March 1st, and `2020`
 * followed by a NUL was 2020.
 */
export function parseSince(raw: unknown): Date {
  const text = typeof raw === 'string' ? unencodedPlus(raw) : undefined;
  const match = text === undefined ? null : SINCE.exec(text);
  const since = match ? new Date(text!) : undefined;
  if (!match || !since || Number.isNaN(since.getTime()) || !isCalendarDay(match)) {
    throw AppError.invalid('_since must be an instant such as 2024-01-01T00:00:00Z');
  }
  return since;
}

const SINCE =
  /^(\d{4})(?:-(0[1-9]|1[0-2])(?:-(0[1-9]|[12]\d|3[01])(?:T([01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d{1,9})?(?:Z|[+-](?:0\d|1[0-4]):[0-5]\d))?)?)?$/;

/** Whether the day of a matched `_since` is in its month (no 30 February). */
function isCalendarDay(match: RegExpExecArray): boolean {
  const [, year, month, day] = match;
  if (!month || !day) {
    return true;
  }
  const date = new Date(Date.UTC(Number(year), Number(month) - 1, Number(day)));
  return date.getUTCDate() === Number(day);
}

function integerParam(value: unknown, name: string, fallback: number): number {
  if (value === undefined) {
    return fallback;
  }
  if (typeof value !== 'string' || !/^\d{1,9}$/.test(value)) {
    throw AppError.invalid(`${name} must be a non-negative integer`);
  }
  return Number(value);
}

/**
 * Whether the history of a resource that is never changed (an AuditEvent: its one version,
 * written at `written`) shows that version under `_since`, `_at` and a cursor: the conditions
 * resource.repository.ts puts in SQL, for a version no later one replaced.
 */
export function showsOnlyVersion(written: Date, params: HistoryParams): boolean {
  const time = written.getTime();
  const currentAt = (period: AtPeriod): boolean => {
    switch (period.prefix) {
      case 'eq':
      case 'le':
        return time < period.high.getTime();
      case 'lt':
        return time < period.low.getTime();
      case 'ge':
      case 'gt':
        return true;
    }
  };
  return (
    (params.since === undefined || time >= params.since.getTime()) &&
    (params.at ?? []).every(currentAt) &&
    // A cursor means "older than its version"; only version 1 exists.
    (params.cursor === undefined || params.cursor.versionId > 1)
  );
}
