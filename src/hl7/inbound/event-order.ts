import { dateTimeOf } from '../mapping/datatypes.js';
import type { V2Message, V2Segment } from '../message/v2-message.js';
import type { Hl7EventClockRepository } from '../store/hl7-event-clock.repository.js';
import type { Touched } from './processing.js';

/**
 * How far ahead of this server's clock an event time may be and still order messages: clocks
 * drift by minutes, not hours. A time further ahead (a year typed 2052 for 2025, a test
 * message's, a zone set wrong) is not taken: as the newest time a record had seen, it would
 * make every later message about it look older, and leave the record as that one set it.
 */
export const MAX_EVENT_AHEAD_MS = 60 * 60 * 1000;

/** An instant of an event time (see eventInstant), unless it is a date alone or too far ahead. */
function instantOf(value: string | undefined, now: Date): Date | undefined {
  if (!value?.includes('T')) return undefined;
  const at = new Date(value);
  return at.getTime() - now.getTime() > MAX_EVENT_AHEAD_MS ? undefined : at;
}

/**
 * When the event a message reports happened, as an instant: EVN-2 (recorded date/time), else
 * MSH-7 (the message's own time), as an engine replaying a queue sends them as they were. None
 * without a time of day, or without a UTC offset that HL7_TIME_ZONE does not supply: by date
 * alone, the day's messages would be taken as older than each other; none more than
 * MAX_EVENT_AHEAD_MS ahead of `now` either.
 */
export function eventInstant(message: V2Message, now = new Date()): Date | undefined {
  const msh = message.first('MSH');
  const evn = message.first('EVN');
  for (const [segment, field] of [
    [evn, 2],
    [msh, 7],
  ] as const) {
    const at = segment && instantOf(dateTimeOf(segment.value(field), segment.timeZone), now);
    if (at) return at;
  }
  return undefined;
}

/**
 * Whether an event of `at` is older than the newest one already applied (`newest`): its data
 * would write over newer data. An event of the same instant is not (a feed sends several).
 */
export function isStale(at: Date | undefined, newest: Date | null | undefined): boolean {
  return at !== undefined && newest !== null && newest !== undefined && newest > at;
}

/**
 * When a report's status last changed, as an instant: OBR-22 (results report/status change),
 * else the message's (`messageAt`, see eventInstant). A lab replaying its queue resends a
 * preliminary report after the final one; the newer status is the one to keep.
 */
export function reportInstant(
  obr: V2Segment,
  messageAt: Date | undefined,
  now = new Date(),
): Date | undefined {
  return instantOf(dateTimeOf(obr.value(22), obr.timeZone), now) ?? messageAt;
}

/**
 * Moves a record's clock on to the message's time and tells whether a newer message was
 * already applied to it: the older message's data then stays unwritten (see upsert).
 */
export type RecordClock = (type: string, id: string) => Promise<boolean>;

/**
 * The clock of the records a message (of `sender`, at `at`, see eventInstant) writes; those it
 * leaves are noted in `touched`. A message without a time is never older than another, and
 * keeps no clock.
 */
export function recordClock(
  clocks: Hl7EventClockRepository,
  sender: string | undefined,
  at: Date | undefined,
  touched: Touched,
): RecordClock {
  return async (type, id) => {
    if (at === undefined) return false;
    const older = isStale(at, (await clocks.advance(type, id, sender, at, false)).detailsAt);
    if (older) keep(touched, type);
    return older;
  };
}

/**
 * Notes that the message left a record of that type as a newer message had set it: found newer
 * by the messages' times, or `byStatus` by the record's (a final report over a preliminary one
 * whose times no zone orders).
 */
export function keep(touched: Touched, type: string, byStatus = false): void {
  const kept = byStatus ? (touched.keptByStatus ??= []) : touched.kept;
  if (!kept.includes(type)) kept.push(type);
}

/** How a warning about records kept from an older message starts (see warningOf). */
export const KEPT_WARNING = 'Older than a message already applied to';

/**
 * The warning of a message that left records as a newer one had set them: answered AA, as
 * there is nothing to resend, yet an interface analyst replaying a queue is told which kinds
 * of record it did not change. Types only, never ids or values. Then the other warnings its
 * processing noted (`touched.warnings`: results a corrected report withdrew by leaving them
 * out), which reach the ACK through here.
 */
export function keptWarnings(touched: Touched): { text: string }[] {
  const warning = (types: string[], by: string) => ({
    text: `${KEPT_WARNING} its ${types.join(', ')} (${by}): what the newer message set there was kept; the rest was taken`,
  });
  // Until 2026-12-07 one kept by its status was said to be older by times it has no zone for.
  const byStatus = touched.keptByStatus ?? [];
  return [
    ...(touched.kept.length > 0 ? [warning(touched.kept, 'by EVN-2, OBR-22 or MSH-7')] : []),
    ...(byStatus.length > 0
      ? [warning(byStatus, "by the report's status, OBR-25, as no time zone orders their times")]
      : []),
    ...(touched.warnings ?? []).map((text) => ({ text })),
  ];
}
