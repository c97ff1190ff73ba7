/** A FHIR date, dateTime or instant as the interval it covers: [low, high) in UTC. */
export interface DateRange {
  low: Date;
  high: Date;
}

const DATE =
  /^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?)?)?$/;

/**
 * The instants a range may span: the years 0001 to 9999 in UTC. PostgreSQL refuses the year 0000
 * in ISO text (a date/time field value out of range: a 500 for a search, a failed write for an
 * index row), and FHIR has no year 0000 either.
 */
export const FIRST_INSTANT = utc(1, 0, 1);
export const END_INSTANT = utc(10000, 0, 1);

/**
 * The interval a value covers at its precision: `1980` is the whole year, `1980-04` the month,
 * `1980-04-12` the day, and a time to the second (or minute) that second. Values without a time
 * zone are read as UTC. Undefined when the value is not a FHIR date, or when its interval leaves
 * the years 0001 to 9999 in UTC (`0000`, or `0001-01-01T00:00:00+01:00`).
 */
export function dateRange(value: string): DateRange | undefined {
  const range = anyDateRange(value);
  return range && range.low >= FIRST_INSTANT && range.high <= END_INSTANT ? range : undefined;
}

/**
 * `date` as PostgreSQL's timestamptz reads it: ISO 8601, except that the end of 9999 (the upper
 * bound of any value in that year) is `10000-01-01…`, where JavaScript writes `+010000-01-01…`
 * and PostgreSQL would read `+010000` as a time zone.
 */
export function sqlTimestamp(date: Date): string {
  return date.toISOString().replace(/^\+0*/, '');
}

function anyDateRange(value: string): DateRange | undefined {
  const match = DATE.exec(value.trim());
  if (!match) {
    return undefined;
  }
  const [, y, mo, d, h, mi, s, fraction, zone] = match;
  const year = Number(y);
  const month = mo ? Number(mo) - 1 : 0;
  const day = d ? Number(d) : 1;
  // Date.UTC would roll 2020-02-30 over to March 1st, and 2020-00 back to December.
  const daysInMonth = utc(year, month + 1, 0).getUTCDate();
  if (month < 0 || month > 11 || day < 1 || day > daysInMonth || Number(h ?? 0) > 23) {
    return undefined;
  }
  if (!mo) {
    return { low: utc(year, 0, 1), high: utc(year + 1, 0, 1) };
  }
  if (!d) {
    return { low: utc(year, month, 1), high: utc(year, month + 1, 1) };
  }
  if (!h) {
    return { low: utc(year, month, day), high: utc(year, month, day + 1) };
  }
  // A leap second (23:59:60Z, which R4 allows) is no time JavaScript's Date can read: it is
  // taken as the last millisecond of the minute, which holds it in every search.
  const leap = s === '60';
  const second = leap ? '59.999' : `${s ?? '00'}${fraction ?? ''}`;
  const low = new Date(`${y}-${mo}-${d}T${h}:${mi}:${second}${zone ?? 'Z'}`);
  if (Number.isNaN(low.getTime())) {
    return undefined;
  }
  const step = leap || fraction ? 1 : s ? 1000 : 60_000;
  return { low, high: new Date(low.getTime() + step) };
}

function utc(year: number, month: number, day: number): Date {
  // Not Date.UTC, which reads the years 0 to 99 as 1900 to 1999.
  const date = new Date(0);
  date.setUTCFullYear(year, month, day);
  return date;
}

/** The precision of a date value: 'y', 'm', 'd', or 't' (has a time). */
export function datePrecision(value: string): 'y' | 'm' | 'd' | 't' {
  const length = value.trim().length;
  return length === 4 ? 'y' : length === 7 ? 'm' : length === 10 ? 'd' : 't';
}
