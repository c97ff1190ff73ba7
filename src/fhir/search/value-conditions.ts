import { AppError } from '../../common/errors/app-error.js';
import { unencodedPlus } from '../../common/http/media-types.js';
import { isAbsoluteUrl, literalReference } from '../literal-reference.js';
import { dateRange, END_INSTANT, FIRST_INSTANT, sqlTimestamp } from './date-range.js';
import { searchForms } from './normalize.js';
import { rangeCondition, splitPrefix, unsupported, type Prefix } from './prefixes.js';
import type { IndexedParamType, SearchParam } from './search-definitions.js';
import type { Criterion } from './search-request.js';
import { splitUnescaped, tokenParts, unescapeSearch } from './search-escapes.js';
import { likeEscape, type SqlParams } from './sql-params.js';

/** The index table of each plain parameter type (PHI values are in search_blind). */
export const TABLE: Record<SearchParam['type'], string> = {
  token: 'search_token',
  string: 'search_string',
  date: 'search_date',
  reference: 'search_reference',
  number: 'search_number',
  quantity: 'search_quantity',
  uri: 'search_uri',
};

/**
 * One value of a plain (not PHI) criterion as SQL over a row of its type's index table
 * (`alias`), its syntax checked: SearchConditions ORs them inside an EXISTS.
 */
export function valueCondition(
  alias: string,
  type: IndexedParamType,
  modifier: string | undefined,
  raw: string,
  params: SqlParams,
  legacy = true,
  unmarked = true,
): string {
  switch (type) {
    case 'token': {
      if (modifier && modifier !== 'not') {
        throw unsupported(`The :${modifier} modifier is not supported on token parameters`);
      }
      const { system, code } = tokenParts(raw);
      if (system === null) {
        return `${alias}.code = ${params.add(code)}`;
      }
      if (code === '') {
        return `${alias}.system = ${params.add(system)}`;
      }
      return system === ''
        ? `(${alias}.system IS NULL AND ${alias}.code = ${params.add(code)})`
        : `(${alias}.system = ${params.add(system)} AND ${alias}.code = ${params.add(code)})`;
    }
    case 'string': {
      const text = unescapeSearch(raw);
      if (modifier === 'exact') {
        // Found through the normalized value's index, then compared as written; rows indexed
        // before 2026-12-07 hold the legacy form, of versions 3 to 5 the unmarked one (README:
        // Upgrading, search:reindex).
        const values = searchForms(text, legacy, unmarked).map((form) => params.add(form));
        return `(${alias}.value IN (${values.join(', ')}) AND ${alias}.exact = ${params.add(text)})`;
      }
      if (modifier && modifier !== 'contains') {
        throw unsupported(`The :${modifier} modifier is not supported on string parameters`);
      }
      const matches = searchForms(text, legacy, unmarked).map((form) =>
        modifier === 'contains'
          ? `${alias}.value LIKE ${params.add(`%${likeEscape(form)}%`)}`
          : `${alias}.value LIKE ${params.add(`${likeEscape(form)}%`)}`,
      );
      return matches.length === 1 ? matches[0]! : `(${matches.join(' OR ')})`;
    }
    case 'date': {
      noModifier(modifier, 'date');
      const { prefix, rest } = splitPrefix(raw);
      const range = dateValue(rest, prefix);
      return rangeCondition(
        prefix,
        `${alias}.low`,
        `${alias}.high`,
        () => `${params.add(sqlTimestamp(range.low))}::timestamptz`,
        () => `${params.add(sqlTimestamp(range.high))}::timestamptz`,
      );
    }
    case 'reference': {
      if (modifier && !/^[A-Z]/.test(modifier)) {
        throw unsupported(`The :${modifier} modifier is not supported on reference parameters`);
      }
      const target = parseReference(raw, modifier);
      return target.type
        ? `(${alias}.target_type = ${params.add(target.type)} AND ${alias}.target_id = ${params.add(target.id)})`
        : `${alias}.target_id = ${params.add(target.id)}`;
    }
    case 'number': {
      noModifier(modifier, 'number');
      const { prefix, rest } = splitPrefix(raw);
      return numberCondition(prefix, `${alias}.value`, rest, params);
    }
    case 'quantity': {
      noModifier(modifier, 'quantity');
      const quantity = splitUnescaped(raw, '|');
      if (quantity.length > 3) {
        // A fourth part is no quantity: `1|2|3|4` found nothing, with a 200, until 2026-12-06.
        throw AppError.invalid(
          'A quantity search value is number|system|code, such as 5.4|http://unitsofmeasure.org|mmol/L',
        );
      }
      const [number = '', system, code] = quantity;
      const { prefix, rest } = splitPrefix(number);
      // A quantity with a comparator (`<5.4`) states a bound, not its value: no value
      // comparison can say it matches, so none finds it (`:missing` still does).
      const parts = [
        numberCondition(prefix, `${alias}.value`, rest, params),
        `${alias}.comparator IS NULL`,
      ];
      if (system) parts.push(`${alias}.system = ${params.add(system)}`);
      if (code && system) parts.push(`${alias}.code = ${params.add(code)}`);
      // R4: with no system, "the unit – either the code or the stated human unit (unit)".
      if (code && !system) {
        const unit = params.add(code);
        parts.push(`(${alias}.code = ${unit} OR ${alias}.unit = ${unit})`);
      }
      return `(${parts.join(' AND ')})`;
    }
    case 'uri': {
      const uri = unescapeSearch(raw);
      if (modifier === 'below') {
        return `${alias}.value LIKE ${params.add(`${likeEscape(uri)}%`)}`;
      }
      noModifier(modifier, 'uri');
      return `${alias}.value = ${params.add(uri)}`;
    }
  }
}

/** A date search value's range; `ap` widened by 10 % of its distance from now. */
export function dateValue(raw: string, prefix: Prefix): { low: Date; high: Date } {
  // A `+` of an offset written unencoded arrives as a space (no date has one), as HAPI reads it.
  const range = dateRange(unencodedPlus(raw.trim()));
  if (!range) {
    throw AppError.invalid(
      'Dates in searches look like 2024, 2024-05, 2024-05-17 or 2024-05-17T10:00:00Z, in the years 0001 to 9999 (UTC)',
    );
  }
  if (prefix !== 'ap') {
    return range;
  }
  // ap: within 10% of the distance from now, at least a day.
  const margin = Math.max(86_400_000, Math.abs(Date.now() - range.low.getTime()) * 0.1);
  // Kept within the years PostgreSQL reads (dateRange), which no stored date leaves either.
  return {
    low: new Date(Math.max(range.low.getTime() - margin, FIRST_INSTANT.getTime())),
    high: new Date(Math.min(range.high.getTime() + margin, END_INSTANT.getTime())),
  };
}

/** Refuses a modifier where `what` takes none. */
export function noModifier(modifier: string | undefined, what: string): void {
  if (modifier) {
    throw unsupported(`The :${modifier} modifier is not supported on ${what}`);
  }
}
/** `:missing=true` or `:missing=false`, given the SQL that holds when the parameter has a value. */
export function missingCondition(criterion: Criterion, exists: () => string): string {
  if (criterion.values.every((value) => value === 'true')) return `NOT ${exists()}`;
  if (criterion.values.every((value) => value === 'false')) return exists();
  throw AppError.invalid(':missing takes true or false');
}

/**
 * `Patient/123`, `123` (any type, or the :Type modifier's) or an absolute URL ending so: this
 * server's as its id, another server's (PUBLIC_URL says which is which) as the whole URL, as the
 * index keeps it.
 */
function parseReference(
  raw: string,
  typeModifier: string | undefined,
): { type?: string; id: string } {
  const literal = literalReference(raw);
  if (literal) {
    return { type: literal.type, id: literal.id };
  }
  if (isAbsoluteUrl(raw)) {
    // Read by the looser pattern below, another server's URL would find this server's id.
    throw AppError.invalid(
      "A reference search value that is a URL ends in Type/id, and another server's is at most 1,024 bytes",
    );
  }
  const match = /^(?:.*\/)?([A-Z][A-Za-z]+)\/([A-Za-z0-9.-]{1,64})$/.exec(raw);
  if (match) {
    return { type: match[1]!, id: match[2]! };
  }
  if (!/^[A-Za-z0-9.-]{1,64}$/.test(raw)) {
    throw AppError.invalid(
      'A reference search value is Type/id, an id, or a URL ending in Type/id',
    );
  }
  return { ...(typeModifier ? { type: typeModifier } : {}), id: raw };
}

/**
 * A number comparison. Equality honours the value's precision (100 means [99.5, 100.5), 100.0
 * means [99.95, 100.05), 1e2 means [50, 150) and 1.00e2 [99.5, 100.5): as many significant
 * figures as the digits written); the other prefixes compare with the value itself; ap is
 * within 10%.
 */
function numberCondition(prefix: Prefix, column: string, raw: string, params: SqlParams): string {
  // 100 digits either side and a 3-digit exponent: PostgreSQL's numeric refuses more than 16,383
  // decimals (a 500).
  const match = /^[+-]?\d{1,100}(?:\.(\d{1,100}))?(?:[eE]([+-]?\d{1,3}))?$/.exec(raw);
  if (!match) {
    throw AppError.invalid(
      'A number search value looks like 5, 5.4 or 5.4e2 (after an optional prefix), 100 digits at most on either side of the point and 3 in the exponent',
    );
  }
  // The power of ten of the last digit written, negated: 2 for 1.25, -1 for 1e1, 1 for 1.00e1.
  const decimals = (match[1]?.length ?? 0) - Number(match[2] ?? 0);
  // Half a unit of the last digit, as decimal text: PostgreSQL's numeric adds it exactly, where
  // floating point made 1.1's range end at 1.1500000000000001 (and found 1.15).
  const half = decimals >= 0 ? `0.${'0'.repeat(decimals)}5` : `5${'0'.repeat(-decimals - 1)}`;
  // Added only when used: PostgreSQL cannot type an unused parameter.
  const v = (): string => `${params.add(raw)}::numeric`;
  const precise = (): string => {
    const value = v();
    const margin = `${params.add(half)}::numeric`;
    return `(${column} >= ${value} - ${margin} AND ${column} < ${value} + ${margin})`;
  };
  switch (prefix) {
    case 'eq':
      return precise();
    case 'ne':
      return `NOT ${precise()}`;
    case 'gt':
    case 'sa':
      return `${column} > ${v()}`;
    case 'lt':
    case 'eb':
      return `${column} < ${v()}`;
    case 'ge':
      return `${column} >= ${v()}`;
    case 'le':
      return `${column} <= ${v()}`;
    case 'ap': {
      // Within 10% of the value, either side, both ends included.
      const value = v();
      return `(${column} >= ${value} - abs(${value}) * 0.1 AND ${column} <= ${value} + abs(${value}) * 0.1)`;
    }
  }
}
