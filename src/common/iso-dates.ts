/**
 * A date (`2026-11-01`, its first moment UTC) or an instant with its UTC offset
 * (`2026-11-01T10:00:00Z`, `2026-11-01T10:00-05:00`), as an operator types one on the command
 * line. Read by this pattern, not by `new Date` alone, which takes what it can guess: a time
 * without an offset is the host's local time (the same `audit:export --from` picked other rows
 * on a server kept on New York time than on one on UTC), `1` is 2001 and `2026-02-30` is
 * March 2nd. Undefined for anything else.
 */
export function parseIsoDateOrInstant(value: string): Date | undefined {
  const match = DATE_OR_INSTANT.exec(value);
  if (!match) return undefined;
  const [, year, month, day] = match;
  const calendar = new Date(Date.UTC(Number(year), Number(month) - 1, Number(day)));
  if (calendar.getUTCDate() !== Number(day)) return undefined;
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? undefined : date;
}

const DATE_OR_INSTANT =
  /^(\d{4})-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])(?:T([01]\d|2[0-3]):[0-5]\d(?::[0-5]\d(?:\.\d{1,9})?)?(?:Z|[+-](?:0\d|1[0-4]):[0-5]\d))?$/;
