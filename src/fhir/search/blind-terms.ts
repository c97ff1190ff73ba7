import { dateRange, datePrecision } from './date-range.js';
import { normalizeString } from './normalize.js';
import { PHI_PREFIX_MAX, PHI_PREFIX_MIN } from './phi-parameters.js';

/**
 * The terms a PHI value is indexed under, before keyed hashing. Searches hash the same terms,
 * so equality of hashes is the only thing the index can answer: no ranges, no order, no text.
 */

/**
 * A name or address part: its exact form and its prefixes of 3 to 20 characters. A character is
 * a code point: 𠮷 (U+20BB7) is one, not the two UTF-16 units of a JavaScript string, so that
 * no prefix ends in half a surrogate pair (hashed as UTF-8, U+FFFD whichever character it was
 * half of: until 2026-12-07 `ab𠮷` and `ab𡈽` shared the prefix `ab` + U+FFFD). Names of the
 * Basic Multilingual Plane have the terms they had. The normalized form keeps no combining
 * mark (normalizeString), so no prefix ends between a letter and its accent either.
 */
export function stringTerms(value: string): string[] {
  const normalized = normalizeString(value);
  if (normalized.length === 0) {
    return [];
  }
  const terms = [exactTerm(normalized)];
  let prefix = '';
  let length = 0;
  for (const character of normalized) {
    prefix += character;
    length++;
    if (length > PHI_PREFIX_MAX) break;
    if (length >= PHI_PREFIX_MIN) terms.push(`p:${prefix}`);
  }
  return terms;
}

/** The term of a whole name or address part (normalized): what `:exact` looks up. */
export function exactTerm(normalized: string): string {
  return `e:${normalized}`;
}

/**
 * The term a starts-with search on a name or address part looks up: its prefix of at most 20
 * characters (code points, as stringTerms cuts them), or, for a value shorter than any indexed
 * prefix, the whole part (`Ng` finds Ng, not Nguyen; `𠮷野` finds 𠮷野, not 𠮷野谷).
 */
export function startsWithTerm(normalized: string): { term: string; wholePart: boolean } {
  const characters = Array.from(normalized);
  return characters.length < PHI_PREFIX_MIN
    ? { term: exactTerm(normalized), wholePart: true }
    : { term: `p:${characters.slice(0, PHI_PREFIX_MAX).join('')}`, wholePart: false };
}

/**
 * The prefix term rows indexed before index version 5 (2026-12-07) hold for a starts-with search
 * where startsWithTerm's differs, else undefined: the value cut at 20 UTF-16 units, as they were
 * (a longer value with characters outside the Basic Multilingual Plane). Shorter values need
 * none: their prefix is the same string, or, of one or two such characters, the whole part,
 * which those rows hold too.
 */
export function unitPrefixTerm(normalized: string): string | undefined {
  if (normalized.length <= PHI_PREFIX_MAX) return undefined;
  const older = `p:${normalized.slice(0, PHI_PREFIX_MAX)}`;
  return older === startsWithTerm(normalized).term ? undefined : older;
}

/** An identifier, phone or email: by value alone, and by system and value. */
export function tokenTerms(system: string | null, value: string): string[] {
  return [`v:${value}`, `s:${system ?? ''}|${value}`];
}

/**
 * The years a range search expands into year buckets. Dates outside them (placeholders such as
 * 1753-01-01 or 0001-01-01, a mistyped 2301) carry a century term too, so that a range reaching
 * past these years is answered by one hash per century rather than one per year.
 */
const FIRST_YEAR = 1800;
const LAST_YEAR = 2099;

/**
 * A birth or death date: its year, month and day buckets, plus a marker of its precision for
 * values without a month or day, so range searches can tell "1980" from "1980-01-01", and its
 * century outside the years 1800 to 2099.
 */
export function dateTerms(value: string): string[] {
  const range = dateRange(value);
  if (!range) {
    return [];
  }
  const precision = datePrecision(value);
  const iso = range.low.toISOString();
  const year = range.low.getUTCFullYear();
  const terms = [`y:${iso.slice(0, 4)}`];
  if (year < FIRST_YEAR || year > LAST_YEAR) {
    terms.push(centuryTerm(Math.floor(year / 100)));
  }
  if (precision === 'y') {
    terms.push(`py:${iso.slice(0, 4)}`);
    return terms;
  }
  terms.push(`m:${iso.slice(0, 7)}`);
  if (precision === 'm') {
    terms.push(`pm:${iso.slice(0, 7)}`);
    return terms;
  }
  terms.push(`d:${iso.slice(0, 10)}`);
  return terms;
}

function centuryTerm(century: number): string {
  return `c:${century}`;
}

/**
 * The terms that find every indexed date overlapping [from, to) (null is open): whole centuries
 * outside the years 1800 to 2099, whole years, whole months and days inside the interval, the
 * precision markers of years and months that only overlap it, and the days that only overlap it
 * (a bound with a time, `ge1980-04-12T10:00Z`: a date is the whole day, so that day overlaps, as
 * FHIR's range semantics want). `within` finds only the dates the interval contains (`sa`,
 * `eb`): the buckets inside it, no markers, so that `sa1980-04-12` leaves out 1980-04 and 1980.
 */
export function dateCoverTerms(from: Date | null, to: Date | null, within = false): string[] {
  const inside = (low: Date, high: Date): boolean => (!from || low >= from) && (!to || high <= to);
  const overlaps = (low: Date, high: Date): boolean => (!from || high > from) && (!to || low < to);
  const terms: string[] = [];
  // Century 0 is the years 0001 to 0099: there is no year 0000 (dateRange).
  for (let century = 0; century <= 99; century++) {
    const first = Math.max(1, century * 100);
    const last = century * 100 + 99;
    if (!overlaps(utcYear(first), utcYear(last + 1))) {
      continue;
    }
    if (last < FIRST_YEAR || first > LAST_YEAR) {
      if (inside(utcYear(first), utcYear(last + 1))) {
        terms.push(centuryTerm(century));
        continue;
      }
    }
    for (let year = first; year <= last; year++) {
      terms.push(...yearCoverTerms(year, inside, overlaps, within));
    }
  }
  return terms;
}

type Test = (low: Date, high: Date) => boolean;

function yearCoverTerms(year: number, inside: Test, overlaps: Test, within: boolean): string[] {
  const yearLow = utcYear(year);
  const yearHigh = utcYear(year + 1);
  const label = yearLow.toISOString().slice(0, 4);
  if (inside(yearLow, yearHigh)) {
    return [`y:${label}`];
  }
  if (!overlaps(yearLow, yearHigh)) {
    return [];
  }
  // A year (or month) the interval only overlaps: its marker finds the dates of that precision,
  // which overlap the interval too; within it they are not contained, so there is no marker.
  const terms = within ? [] : [`py:${label}`];
  for (let month = 0; month < 12; month++) {
    const monthLow = utcYear(year, month);
    const monthHigh = utcYear(year, month + 1);
    const label = monthLow.toISOString().slice(0, 7);
    if (inside(monthLow, monthHigh)) {
      terms.push(`m:${label}`);
    } else if (overlaps(monthLow, monthHigh)) {
      if (!within) terms.push(`pm:${label}`);
      for (let day = monthLow; day < monthHigh; day = new Date(day.getTime() + 86_400_000)) {
        const next = new Date(day.getTime() + 86_400_000);
        if (within ? inside(day, next) : overlaps(day, next)) {
          terms.push(`d:${day.toISOString().slice(0, 10)}`);
        }
      }
    }
  }
  return terms;
}

/** The start of a year's month in UTC; not Date.UTC, which reads the years 0 to 99 as 19xx. */
function utcYear(year: number, month = 0): Date {
  const date = new Date(0);
  date.setUTCFullYear(year, month, 1);
  return date;
}
