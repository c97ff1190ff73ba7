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

export function unsupported(message: string): AppError {
  return AppError.of(400, 'not-supported', message);
}
