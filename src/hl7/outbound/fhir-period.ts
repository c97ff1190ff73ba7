/** FHIR's Period: a dateTime each end, either of which may be absent. */
export interface Period {
  start?: string;
  end?: string;
}

/**
 * The instant after which a period's end has passed for everyone. A dateTime with a time has
 * one; a date (or month, or year) ends with its last day, and without a time zone it is taken
 * to end as that day does in the last zone to finish it (UTC-12): a number ending "today" is
 * still called today, wherever the patient is.
 */
function endOf(end: string): number | undefined {
  if (end.includes('T')) {
    const instant = Date.parse(end);
    return Number.isNaN(instant) ? undefined : instant;
  }
  const match = /^(\d{4})(?:-(\d{2}))?(?:-(\d{2}))?$/.exec(end);
  if (!match) return undefined;
  const [, year, month, day] = match;
  const next = day
    ? Date.UTC(Number(year), Number(month) - 1, Number(day) + 1)
    : month
      ? Date.UTC(Number(year), Number(month), 1)
      : Date.UTC(Number(year) + 1, 0, 1);
  return next + 12 * 3600_000;
}

/** Whether an element's period (a name's, an address's, a ContactPoint's) ended before now. */
export function ended(element: { period?: Period }, now: Date): boolean {
  const end = typeof element.period?.end === 'string' ? endOf(element.period.end) : undefined;
  return end !== undefined && end <= now.getTime();
}

/**
 * Those in use first: a receiver takes PID-5's first repetition as the legal name (v2.5.1
 * 3.4.2.5) and many take PID-11's first as where the patient lives; an ended one goes after,
 * with its expiration date, for those that keep the history.
 */
export function inUseFirst<T extends { period?: Period }>(elements: T[], now: Date): T[] {
  return [
    ...elements.filter((element) => !ended(element, now)),
    ...elements.filter((element) => ended(element, now)),
  ];
}
