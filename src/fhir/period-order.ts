import { dateRange } from './search/date-range.js';

/**
 * R4's invariant per-1 on a Period's start and end (valid R4 dateTimes): a start SHALL be lower
 * than its end. Compared as the intervals they cover, so `2024-03-01` to `2024-03` is a Period;
 * when one has no time, by the calendar dates as written, to the precision of the less precise
 * (a date has no time zone to convert), so `2024-03-01` to `2024-03-01T01:00:00+05:00` is one too.
 */
export function periodInOrder(start: string, end: string): boolean {
  if (start.length > 10 && end.length > 10) {
    const [from, to] = [dateRange(start), dateRange(end)];
    return !from || !to || from.low < to.high;
  }
  const length = Math.min(start.length, end.length, 10);
  return start.slice(0, length) <= end.slice(0, length);
}
