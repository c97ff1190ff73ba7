import { periodInOrder } from '../../fhir/period-order.js';
import type { V2Segment, V2Value } from '../message/v2-message.js';
import { codingSystemOf, dateTimeOf } from './datatypes.js';
import { exactNumberOf } from './numeric.js';

/*
 * When, how often and how much an order (ServiceRequest) or a prescription (MedicationRequest's
 * dosage) is done, from its TQ1 (v2.5 on), else the TQ of ORC-7, OBR-27 or RXE-1 before it.
 */

/**
 * How much of the service is ordered, as the IG's TQ1[ServiceRequest] map has it: TQ1-2 (a CQ:
 * the number, then its units) as `quantityQuantity`, else TQ.1 of feeds before v2.5 (ORC-7.1,
 * else OBR-27.1, its units a subcomponent), as the IG's TQ map has it. Dropped until
 * 2026-12-07: an order of two units of blood read as one.
 */
export function quantityOf(
  timing: V2Segment | undefined,
  orc: V2Segment | undefined,
  obr: V2Segment | undefined,
): { quantityQuantity?: Record<string, unknown> } {
  const [value, units] = timing
    ? [timing.value(2), [timing.value(2, 2, 1), timing.value(2, 2, 2), timing.value(2, 2, 3)]]
    : orc?.value(7, 1, 1)
      ? [orc.value(7, 1, 1), [orc.value(7, 1, 2)]]
      : [obr?.value(27, 1, 1), [obr?.value(27, 1, 2)]];
  const field = timing ? 'TQ1-2' : orc?.value(7, 1, 1) ? 'ORC-7.1' : 'OBR-27.1';
  const amount = exactNumberOf(value, field);
  if (amount === undefined) return {};
  const [code, text, system] = units;
  return {
    quantityQuantity: {
      value: amount,
      ...(text || code ? { unit: text ?? code } : {}),
      ...(code && system?.toUpperCase() === 'UCUM'
        ? { system: 'http://unitsofmeasure.org', code }
        : {}),
    },
  };
}

/**
 * R4's units of time (UnitsOfTime, a required binding), and the same units as ANSI's table
 * (`ANS+`, which the samples name) spells them: a period of any other unit is left out, as R4
 * has no period without its unit (tim-1).
 */
const UNITS_OF_TIME: Record<string, string> = {
  s: 's',
  min: 'min',
  h: 'h',
  hr: 'h',
  d: 'd',
  wk: 'wk',
  mo: 'mo',
  a: 'a',
  yr: 'a',
};

/**
 * The period of a repeat pattern (TQ1-3's first: RPT.5, in RPT.6's units), as the IG's
 * RPT[Timing] map has it: `repeat.period` and `repeat.periodUnit`, both or neither. Dropped
 * until 2026-12-07: a pattern sent as "once every 180 minutes" kept only its code.
 */
export function periodOf(timing: V2Segment | undefined): {
  period?: number;
  periodUnit?: string;
} {
  const pattern = timing?.repetitions(3)[0];
  const period = exactNumberOf(pattern?.value(5), 'TQ1-3.5');
  const unit = UNITS_OF_TIME[pattern?.value(6)?.toLowerCase() ?? ''];
  return period !== undefined && period >= 0 && unit ? { period, periodUnit: unit } : {};
}

/** A TM of hours and minutes (and seconds): its offset, if any, is not taken (see timesOfDay). */
const TM = /^([01]\d|2[0-3])([0-5]\d)(?:([0-5]\d)(\.\d{1,9})?)?$/;

/**
 * The explicit times of day an order is done at (TQ1-4, a TM each) as `timeOfDay`, as the IG's
 * TQ1[ServiceRequest] map has it. A time with a UTC offset, or that is no time (`11:30:05`,
 * `2500`), is left out: timeOfDay is a time of the patient's day, of no zone. Dropped until
 * 2026-12-07: a dressing change at 08:00 and 20:00 read as any time of day.
 */
function timesOfDay(timing: V2Segment | undefined): { timeOfDay?: string[] } {
  const times = (timing?.repetitions(4) ?? []).flatMap((time) => {
    const [, hours, minutes, seconds, fraction] = TM.exec(time.value(1) ?? '') ?? [];
    return hours ? [`${hours}:${minutes}:${seconds ?? '00'}${fraction ?? ''}`] : [];
  });
  return times.length > 0 ? { timeOfDay: times } : {};
}

/** Table 0335, repeat patterns (BID, Q6H, PRN...): a TQ1-3 or TQ-2 code of no named system. */
const REPEAT_PATTERNS = 'http://terminology.hl7.org/CodeSystem/v2-0335';

/**
 * How often an order is done, as the IG's RPT[Timing] map has it: the repeat pattern code (the
 * first TQ1-3's first component, a CWE; else `interval`, the repeat pattern of a TQ's interval
 * that feeds before v2.5 send in ORC-7.2, OBR-27.2 or RXE-1.2) as the Timing's `code`.
 */
export function repeatPatternOf(
  timing: V2Segment | undefined,
  interval: V2Value | undefined,
): { code?: Record<string, unknown> } {
  const pattern = timing?.repetitions(3)[0];
  const [code, display, system] = pattern
    ? [pattern.value(1, 1), pattern.value(1, 2), pattern.value(1, 3)]
    : [interval ?? undefined, undefined, undefined];
  if (!code) return {};
  return {
    code: {
      coding: [
        {
          system: system ? codingSystemOf(system) : REPEAT_PATTERNS,
          code,
          ...(display ? { display } : {}),
        },
      ],
      ...(display ? { text: display } : {}),
    },
  };
}

/**
 * When and how often the order is to be done, as the IG's TQ1[ServiceRequest] map has it:
 * TQ1-7 and TQ1-8 as the bounds of `occurrenceTiming` (the end only when after the start,
 * per-1), TQ1-3 as its code (see repeatPatternOf) and period (periodOf), TQ1-4 as its times
 * of day (timesOfDay); feeds before v2.5 send them as ORC-7.4,
 * ORC-7.5 and ORC-7.2 (else OBR-27's). The bounds were dropped until 2026-12-07: a fasting
 * glucose ordered for 08:00 tomorrow was filed with no time, and a worklist read it as due now;
 * so was the repeat pattern: a glucose every 6 hours read as one glucose.
 */
export function occurrenceOf(
  timing: V2Segment | undefined,
  orc: V2Segment | undefined,
  obr: V2Segment | undefined,
): { occurrenceTiming?: Record<string, unknown> } {
  const [from, to, zone] = timing
    ? [timing.value(7), timing.value(8), timing.timeZone]
    : orc?.value(7, 4) || orc?.value(7, 5)
      ? [orc.value(7, 4), orc.value(7, 5), orc.timeZone]
      : [obr?.value(27, 4), obr?.value(27, 5), obr?.timeZone];
  const start = dateTimeOf(from, zone);
  const end = dateTimeOf(to, zone);
  const bounds = {
    ...(start ? { start } : {}),
    ...(end && (!start || periodInOrder(start, end)) ? { end } : {}),
  };
  const pattern = repeatPatternOf(timing, orc?.value(7, 2, 1) || obr?.value(27, 2, 1));
  const repeat = {
    ...(Object.keys(bounds).length > 0 ? { boundsPeriod: bounds } : {}),
    ...periodOf(timing),
    ...timesOfDay(timing),
  };
  const occurrence = {
    ...(Object.keys(repeat).length > 0 ? { repeat } : {}),
    ...pattern,
  };
  return Object.keys(occurrence).length > 0 ? { occurrenceTiming: occurrence } : {};
}
