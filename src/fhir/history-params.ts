import { AppError } from '../common/errors/app-error.js';
import type { HistoryParams } from './fhir-types.js';

const MAX_COUNT = 1000;
/** What history reads; `_format` and `_pretty` are the format's (JSON, checked elsewhere). */
const KNOWN = new Set(['_count', '_offset', '_since', '_format', '_pretty']);

/** `_count` (default 50, at most 1000), `_offset` and `_since` of a history request. */
export function historyParams(query: Record<string, unknown>): HistoryParams {
  for (const name of Object.keys(query)) {
    if (name === '_at' || name === '_list' || name === '_sort') {
      throw AppError.of(400, 'not-supported', `History does not support ${name}: use _since`);
    }
    if (!KNOWN.has(name)) {
      throw AppError.invalid(
        /^[A-Za-z0-9_-]{1,64}$/.test(name)
          ? `History takes _count, _offset and _since, not ${name}`
          : 'History takes _count, _offset and _since',
      );
    }
  }
  const count = integerParam(query['_count'], '_count', 50);
  const offset = integerParam(query['_offset'], '_offset', 0);
  const since = query['_since'] === undefined ? undefined : parseSince(query['_since']);
  return { count: Math.min(Math.max(count, 1), MAX_COUNT), offset, since };
}

/** `_since` of history and `$everything`: one instant. */
export function parseSince(raw: unknown): Date {
  const since = typeof raw === 'string' ? new Date(raw) : undefined;
  if (!since || Number.isNaN(since.getTime())) {
    throw AppError.invalid('_since must be an instant such as 2024-01-01T00:00:00Z');
  }
  return since;
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
