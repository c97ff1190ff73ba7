import { AppError } from '../../common/errors/app-error.js';

export const PREFIXES = ['eq', 'ne', 'gt', 'lt', 'ge', 'le', 'sa', 'eb', 'ap'] as const;
export type Prefix = (typeof PREFIXES)[number];

/** Splits `ge2020-01-01` into its comparison prefix (default eq) and value. */
export function splitPrefix(value: string): { prefix: Prefix; rest: string } {
  const head = value.slice(0, 2) as Prefix;
  if (PREFIXES.includes(head) && value.length > 2 && !/^[a-z]/.test(value.slice(2, 3))) {
    return { prefix: head, rest: value.slice(2) };
  }
  return { prefix: 'eq', rest: value };
}

/** SQL comparing an interval [lowSql, highSql) with a search interval, per FHIR's prefix rules. */
export function rangeCondition(
  prefix: Prefix,
  lowSql: string,
  highSql: string,
  // Thunks: a bound parameter is added only when used (PostgreSQL cannot type an unused one).
  qLow: () => string,
  qHigh: () => string,
): string {
  switch (prefix) {
    case 'eq':
      return `(${lowSql} >= ${qLow()} AND ${highSql} <= ${qHigh()})`;
    case 'ne':
      return `NOT (${lowSql} >= ${qLow()} AND ${highSql} <= ${qHigh()})`;
    case 'gt':
      return `${highSql} > ${qHigh()}`;
    case 'lt':
      return `${lowSql} < ${qLow()}`;
    case 'ge':
      return `${highSql} > ${qLow()}`;
    case 'le':
      return `${lowSql} < ${qHigh()}`;
    case 'sa':
      return `${lowSql} >= ${qHigh()}`;
    case 'eb':
      return `${highSql} <= ${qLow()}`;
    case 'ap':
      // The caller widens [qLow, qHigh) by the approximation margin: overlap is a match.
      return `(${lowSql} < ${qHigh()} AND ${highSql} > ${qLow()})`;
  }
}

/**
 * rangeCondition for an instant stored with more precision than it is shown with: `column` is
 * the start of a range one millisecond wide (`meta.lastUpdated` shows milliseconds). The
 * millisecond is taken off the bound rather than added to the column, so that an index on the
 * column serves the comparison.
 */
export function instantCondition(
  prefix: Prefix,
  column: string,
  qLow: () => string,
  qHigh: () => string,
): string {
  const less = (bound: string): string => `(${bound} - interval '1 millisecond')`;
  switch (prefix) {
    case 'eq':
      return `(${column} >= ${qLow()} AND ${column} <= ${less(qHigh())})`;
    case 'ne':
      return `NOT (${column} >= ${qLow()} AND ${column} <= ${less(qHigh())})`;
    case 'gt':
      return `${column} > ${less(qHigh())}`;
    case 'lt':
      return `${column} < ${qLow()}`;
    case 'ge':
      return `${column} > ${less(qLow())}`;
    case 'le':
      return `${column} < ${qHigh()}`;
    case 'sa':
      return `${column} >= ${qHigh()}`;
    case 'eb':
      return `${column} <= ${less(qLow())}`;
    case 'ap':
      return `(${column} < ${qHigh()} AND ${column} > ${less(qLow())})`;
  }
}

export function unsupported(message: string): AppError {
  return AppError.of(400, 'not-supported', message);
}
