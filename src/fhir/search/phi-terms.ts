import { AppError } from '../../common/errors/app-error.js';
import {
  dateCoverTerms,
  exactTerm,
  startsWithTerm,
  tokenTerms,
  unitPrefixTerm,
} from './blind-terms.js';
import { dateRange, datePrecision } from './date-range.js';
import { normalizePhone, searchForms } from './normalize.js';
import { PHI_PREFIX_MIN } from './phi-parameters.js';
import { splitPrefix, unsupported } from './prefixes.js';
import type { SearchParam } from './search-definitions.js';
import type { Criterion } from './search-request.js';
import { tokenParts, unescapeSearch } from './search-escapes.js';
import { noModifier } from './value-conditions.js';

/**
 * What a PHI criterion matches, as blind-index terms before they are hashed under the
 * parameter's key: SearchConditions hashes them and matches hashes only.
 */
export interface PhiTerms {
  /** A resource with any of these matches (none of them, when `negate`). */
  terms: string[];
  /** `ne` values: a resource with a value, and none of these, matches. */
  excluded: string[];
  /** `:not` on a token. */
  negate: boolean;
}

/** What the terms depend on of a parameter. */
type PhiParam = Pick<SearchParam, 'code' | 'type'>;

/** The blind term a PHI token value (`system|value`, `|value`, `value`) is searched by. */
export function tokenTerm(code: string, raw: string): string {
  const parts = tokenParts(raw);
  const system = parts.system;
  let value = parts.code;
  if (value === '') {
    throw AppError.invalid(
      `${code} needs a value: identifiers are matched by keyed hashes of system and value`,
    );
  }
  if (code === 'phone' || system === 'phone') value = normalizePhone(value);
  const [byValue, bySystem] = tokenTerms(system, value);
  return system === null ? byValue! : bySystem!;
}

/**
 * The terms of a PHI criterion's values (OR-ed), and its syntax checked: equality of whole
 * values, prefixes, and the day, month and year buckets a date range covers; nothing else.
 * `warnings` gets what the searchset should tell the client. `legacy`, `unitPrefixes` and
 * `unmarked` say which older forms rows may remain in (SearchIndexStatus).
 */
export function phiTerms(
  param: PhiParam,
  criterion: Criterion,
  warnings: Set<string>,
  legacy = true,
  unitPrefixes = true,
  unmarked = true,
): PhiTerms {
  const { modifier } = criterion;
  const result: PhiTerms = { terms: [], excluded: [], negate: false };
  const ranges = new OpenRanges();
  for (const raw of criterion.values) {
    switch (param.type) {
      case 'string':
        result.terms.push(
          ...stringTerms(param, modifier, raw, warnings, legacy, unitPrefixes, unmarked),
        );
        break;
      case 'token':
        if (modifier === 'not') result.negate = true;
        else if (modifier) {
          throw unsupported(`The :${modifier} modifier is not supported on ${param.code}`);
        }
        result.terms.push(tokenTerm(param.code, raw));
        break;
      case 'date':
        noModifier(modifier, param.code);
        dateTerms(param, raw, result, ranges);
        break;
      case 'reference':
      case 'number':
      case 'quantity':
      case 'uri':
        throw unsupported(`${param.code} cannot be searched`);
    }
  }
  result.terms.push(...ranges.coverTerms());
  // Each term once: 100 values were 43,550 hashes to compute and match, 0.7 s a criterion.
  return { ...result, terms: [...new Set(result.terms)], excluded: [...new Set(result.excluded)] };
}

/**
 * The open-ended ranges of a criterion's values, OR-ed: those open on the same side nest, so
 * their union is the widest of them (`ge1001,ge1002,…` is `ge1001`), and a criterion costs
 * at most four covers however many values it has. Covered one by one, 100 values took 90 ms
 * of the event loop, 1.8 s for a search of 20 such criteria.
 */
class OpenRanges {
  private readonly from = new Map<boolean, Date>();
  private readonly to = new Map<boolean, Date>();

  /** `[from, ∞)` or `(-∞, to)`; `within` for sa and eb (the dates the range contains). */
  add(from: Date | null, to: Date | null, within: boolean): void {
    if (from) {
      const widest = this.from.get(within);
      if (!widest || from < widest) this.from.set(within, from);
    }
    if (to) {
      const widest = this.to.get(within);
      if (!widest || to > widest) this.to.set(within, to);
    }
  }

  coverTerms(): string[] {
    return [
      ...[...this.from].flatMap(([within, from]) => dateCoverTerms(from, null, within)),
      ...[...this.to].flatMap(([within, to]) => dateCoverTerms(null, to, within)),
    ];
  }
}

/**
 * The terms of a string value: under the current normalization and, where it differs and
 * `legacy` says such rows may remain, under the one rows indexed before 2026-12-07 were written
 * under (until `search:reindex` rewrites them), and, with `unmarked`, under the one of index
 * versions 3 to 5; likewise, with `unitPrefixes`, the prefix as rows before version 5 cut it.
 * Only the current form's length decides the warning of a value too short for a prefix.
 */
function stringTerms(
  param: PhiParam,
  modifier: string | undefined,
  raw: string,
  warnings: Set<string>,
  legacy: boolean,
  unitPrefixes: boolean,
  unmarked: boolean,
): string[] {
  if (modifier === 'contains') {
    throw AppError.invalid(
      `:contains is not available on ${param.code}: names, identifiers, addresses and free text are stored encrypted and indexed only as keyed hashes of whole values and prefixes`,
    );
  }
  if (modifier && modifier !== 'exact') {
    throw unsupported(`The :${modifier} modifier is not supported on ${param.code}`);
  }
  const forms = searchForms(unescapeSearch(raw), legacy, unmarked);
  if (forms[0]!.length === 0) {
    throw AppError.invalid(`${param.code} needs a value with letters or digits`);
  }
  return forms
    .filter((normalized) => normalized.length > 0)
    .flatMap((normalized, index) => {
      // 김 is one syllable but was three jamo: an older form's length is not the user's.
      const term = stringTerm(param, modifier, normalized, index === 0 ? warnings : new Set());
      const older = modifier === 'exact' || !unitPrefixes ? undefined : unitPrefixTerm(normalized);
      return older === undefined ? [term] : [term, older];
    });
}

function stringTerm(
  param: PhiParam,
  modifier: string | undefined,
  normalized: string,
  warnings: Set<string>,
): string {
  if (modifier === 'exact') return exactTerm(normalized);
  // A two-letter family name (Ng, Li, Wu) must be findable: such a value matches whole
  // name parts, and the searchset says so, as no shorter prefix is indexed.
  const { term, wholePart } = startsWithTerm(normalized);
  if (wholePart) {
    warnings.add(
      `${param.code} values shorter than ${PHI_PREFIX_MIN} characters match whole name or address parts only (as :exact), not the parts that start with them: prefixes of PHI are indexed from ${PHI_PREFIX_MIN} characters`,
    );
  }
  return term;
}

/** A birth date's value: its bucket for eq and ne, the buckets a range covers otherwise. */
function dateTerms(param: PhiParam, raw: string, result: PhiTerms, ranges: OpenRanges): void {
  const { prefix, rest } = splitPrefix(raw);
  const range = dateRange(rest);
  if (!range) {
    throw AppError.invalid(
      `${param.code} must be a date such as 1980, 1980-04 or 1980-04-12 (years 0001 to 9999)`,
    );
  }
  const precision = datePrecision(rest);
  if (precision === 't') {
    // The index holds the (UTC) day of a value at most: a time cannot be compared, and
    // was dropped, so that `sa` and `eb` of one instant found the same people.
    throw unsupported(
      `${param.code} is searched by year, month or day (1980, 1980-04, 1980-04-12), not by time: it is indexed as keyed hashes of days, months and years only`,
    );
  }
  if (prefix === 'eq' || prefix === 'ne') {
    const iso = range.low.toISOString();
    const term =
      precision === 'y'
        ? `y:${iso.slice(0, 4)}`
        : precision === 'm'
          ? `m:${iso.slice(0, 7)}`
          : `d:${iso.slice(0, 10)}`;
    // `ne` is one value's prefix, not the criterion's: `birthdate=ne1980,ge2000` is either.
    (prefix === 'ne' ? result.excluded : result.terms).push(term);
    return;
  }
  if (prefix === 'ap') throw unsupported(`ap is not supported on ${param.code}`);
  const bounds: Record<string, [Date | null, Date | null]> = {
    gt: [range.high, null],
    sa: [range.high, null],
    ge: [range.low, null],
    lt: [null, range.low],
    eb: [null, range.low],
    le: [null, range.high],
  };
  const [from, to] = bounds[prefix]!;
  // sa and eb: the dates wholly after (before) the value, not those that only reach
  // past it (R4: the range above the search value contains the target's range).
  ranges.add(from, to, prefix === 'sa' || prefix === 'eb');
}
