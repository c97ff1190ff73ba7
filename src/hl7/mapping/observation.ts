import { holdsExactly } from '../../common/exact-decimal.js';
import type { V2Message, V2Repetition, V2Segment, V2Value } from '../message/v2-message.js';
import { observationCategory, reportCategory } from './categories.js';
import type { FieldWarning } from './patient.js';
import {
  annotationsOf,
  codeableConceptOf,
  dateTimeOf,
  hasInvalidTime,
  organizationOf,
  practitionerOf,
  systemOfHd,
  type Identifier,
} from './datatypes.js';

/** A DT or DTM as HL7 writes it: YYYY[MM[DD[HH[MM[SS[.S…]]]]]][+/-ZZZZ]. */
const DTM_SHAPE =
  /^\d{4}(?:\d{2}(?:\d{2}(?:\d{2}(?:\d{2}(?:\d{2}(?:\.\d{1,4})?)?)?)?)?)?(?:[+-]\d{4})?$/;

const DATA_ABSENT = 'http://terminology.hl7.org/CodeSystem/data-absent-reason';

/** OBX-11 / OBR-25 result status (table 0085 / 0123) to FHIR. */
const OBSERVATION_STATUS: Record<string, string> = {
  // Amended (v2.7 on): the result changed after the placer corrected the demographics.
  A: 'amended',
  F: 'final',
  U: 'final', // made final without its values sent again
  P: 'preliminary',
  C: 'corrected',
  X: 'cancelled',
  D: 'entered-in-error',
  W: 'entered-in-error',
  R: 'registered',
  I: 'registered',
  S: 'preliminary',
  // The IG leaves these to the implementer. Appended: a result added to; not asked: no result
  // will come; order detail: a line describing the order, no result.
  B: 'amended',
  N: 'cancelled',
  O: 'registered',
};
/** The results' status a report's (OBR-25) gives them when their OBX-11 is empty. */
const RESULT_STATUS_OF_REPORT: Record<string, string> = {
  F: 'final',
  P: 'preliminary',
  C: 'corrected',
  X: 'cancelled',
  A: 'preliminary',
  S: 'preliminary',
  R: 'registered',
  I: 'registered',
  O: 'registered',
};
const REPORT_STATUS: Record<string, string> = {
  F: 'final',
  P: 'preliminary',
  C: 'corrected',
  X: 'cancelled',
  A: 'partial',
  R: 'registered',
  I: 'registered',
  O: 'registered',
  S: 'partial',
};

/**
 * Whether a version of a report carries all of its results: a final or corrected one (OBR-25 F,
 * C), as v2 sends a report whole once verified (LRI's snapshot). A preliminary or partial one
 * (P, A, S...) may carry only what is new, as some labs send results as they come.
 */
export function carriesAllResults(obr: V2Segment): boolean {
  const status = obr.value(25)?.trim().toUpperCase();
  return status === 'F' || status === 'C';
}

/**
 * Whether a version of a report is before its verification: preliminary, partial or only
 * registered (OBR-25 P, A, S, I, R, O). v2 changes a final report (F) only by a correction (C).
 */
export function isProvisionalReport(obr: V2Segment): boolean {
  return ['P', 'A', 'S', 'I', 'R', 'O'].includes(obr.value(25)?.trim().toUpperCase() ?? '');
}

/**
 * Abnormal flags (OBX-8, table 0078) that FHIR's ObservationInterpretation has under the same
 * code, which R4 binds interpretation to, as the IG's InterpretationCodes map has them (the
 * IG's, and AC, HM, HX, LX, QCF, TOX, which the v3 code system keeps as retired ones).
 */
const INTERPRETATIONS = new Set(
  (
    '< > A AA AC B CAR D DET E EX EXP H HH HM HU HX I IE IND L LL LU LX MS N NCL ND NEG NR NS ' +
    'POS QCF R RR S SDD SYN-R SYN-S TOX U UNE VS W WR'
  ).split(' '),
);
const INTERPRETATION_SYSTEM = 'http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation';
const ABNORMAL_FLAGS = 'http://terminology.hl7.org/CodeSystem/v2-0078';

/**
 * OBX-8 as an interpretation: a flag of table 0078, sent as such (`H^High^HL70078`) or with no
 * coding system (`H`), in the v3 system under its code, as the IG's map does; until 2026-12-06
 * one coded HL70078 stayed in the v2 system, which R4's binding does not name. Other systems'
 * codes (a lab's own) and 0078 codes v3 lacks stay as sent.
 */
function interpretationOf(cwe: V2Repetition): Record<string, unknown> | undefined {
  const concept = codeableConceptOf(cwe);
  const coding = concept?.['coding'] as { system?: string; code: string }[] | undefined;
  if (!concept || !coding) return concept;
  return {
    ...concept,
    coding: coding.map((flag) =>
      (!flag.system || flag.system === ABNORMAL_FLAGS) &&
      INTERPRETATIONS.has(flag.code.toUpperCase())
        ? { ...flag, system: INTERPRETATION_SYSTEM, code: flag.code.toUpperCase() }
        : flag,
    ),
  };
}

/** EI (entity identifier: OBR-3 filler order number) to Identifier. */
export function identifierOfEi(
  ei: V2Repetition | undefined,
  fallbackSystem?: string,
): Identifier | undefined {
  const value = ei?.value(1);
  if (!ei || !value) return undefined;
  const system = systemOfHd(ei.value(2), ei.value(3), ei.value(4)) ?? fallbackSystem;
  return { ...(system ? { system } : {}), value };
}

/**
 * A status field's code mapped: empty is `final` (the field is left empty by feeds that send
 * final results only), a code the table has not is `unknown`. Until 2026-12-06 any code not
 * mapped (not asked, order detail only, a local one) made a result `final`.
 */
function statusOf(code: V2Value, map: Record<string, string>, empty = 'final'): string {
  if (!code) return empty;
  return map[code.toUpperCase()] ?? 'unknown';
}

/** OBR to a DiagnosticReport (v2-to-FHIR OBR[DiagnosticReport]); results are added by the caller. */
export function reportFromObr(
  obr: V2Segment,
  patientId: string,
  identifier: Identifier | undefined,
  senderSystem?: string,
): Record<string, unknown> {
  const interpreter = interpreterOf(obr, senderSystem);
  const code = codeableConceptOf(obr.repetitions(4)[0]);
  const effective = dateTimeOf(obr.value(7), obr.timeZone);
  const issued = dateTimeOf(obr.value(22), obr.timeZone);
  const category = reportCategory(obr.value(24));
  return {
    resourceType: 'DiagnosticReport',
    ...(identifier ? { identifier: [identifier] } : {}),
    status: statusOf(obr.value(25), REPORT_STATUS),
    ...(category.length > 0 ? { category } : {}),
    code: code ?? { text: 'Unspecified observation' },
    subject: { reference: `Patient/${patientId}` },
    ...(effective ? { effectiveDateTime: effective } : {}),
    // issued is an instant: only a time with its offset qualifies.
    ...(issued?.includes('T') ? { issued } : {}),
    ...(interpreter ? { resultsInterpreter: [interpreter] } : {}),
  };
}

/**
 * OBR-32, the principal result interpreter (NDL: its first component a CNN of id, family and
 * given names as subcomponents), as the report's resultsInterpreter: dropped until 2026-12-06.
 */
function interpreterOf(
  obr: V2Segment,
  senderSystem: string | undefined,
): Record<string, unknown> | undefined {
  const ndl = obr.repetitions(32)[0];
  if (!ndl) return undefined;
  const id = ndl.value(1, 1);
  const display = [ndl.value(1, 3), ndl.value(1, 2)]
    .filter((part): part is string => !!part?.trim())
    .join(' ');
  if (!id && !display) return undefined;
  return {
    type: 'Practitioner',
    ...(id ? { identifier: { ...(senderSystem ? { system: senderSystem } : {}), value: id } } : {}),
    ...(display ? { display } : {}),
  };
}

/**
 * OBX to an Observation (v2-to-FHIR OBX[Observation]): value[x] by OBX-2, units from OBX-6,
 * status from OBX-11, abnormal flags (OBX-8) as interpretation, the NTE after it as notes, and
 * a category from its code or its report's section (OBR-24 of `report`), whose status
 * (OBR-25) is the result's when OBX-11 is empty.
 */
export function observationFromObx(
  obx: V2Segment,
  patientId: string,
  fallbackTime: string | undefined,
  notes: readonly V2Segment[] = [],
  report?: V2Segment,
  senderSystem?: string,
): Record<string, unknown> {
  // Who made the observation (OBX-16) and the lab that performed it (OBX-23), as the IG's OBX
  // map has them (a CLIA lab's name for ELR): dropped until 2026-12-06.
  const performer = [
    ...obx.repetitions(16).map((xcn) => {
      const who = practitionerOf(xcn, senderSystem);
      return who && { type: 'Practitioner', ...who };
    }),
    ...obx.repetitions(23).map((xon) => {
      const lab = organizationOf(xon, senderSystem);
      return lab && { type: 'Organization', ...lab };
    }),
  ].filter((reference) => reference !== undefined);
  // OBX-3 is required, yet senders leave it out: the value is kept, under a code that says so.
  const code = codeableConceptOf(obx.repetitions(3)[0]) ?? {
    text: 'Observation without a code (OBX-3 was empty)',
  };
  const value = valueOf(obx);
  const effective = dateTimeOf(obx.value(14), obx.timeZone) ?? fallbackTime;
  const interpretation = obx.repetitions(8).map(interpretationOf).filter(Boolean);
  const note = annotationsOf(notes);
  const range = obx.value(7);
  const category = observationCategory(code, report?.value(24));
  const reportStatus = report?.value(25);
  const ofReport = reportStatus ? RESULT_STATUS_OF_REPORT[reportStatus.toUpperCase()] : undefined;
  return {
    resourceType: 'Observation',
    status: statusOf(obx.value(11), OBSERVATION_STATUS, ofReport),
    ...(category.length > 0 ? { category } : {}),
    code,
    subject: { reference: `Patient/${patientId}` },
    ...(effective ? { effectiveDateTime: effective } : {}),
    ...(performer.length > 0 ? { performer } : {}),
    // A value of a type not mapped (ED, RP...) stays in the stored message; the Observation says so.
    ...(value ??
      (obx.repetitions(5).length > 0
        ? { dataAbsentReason: { coding: [{ system: DATA_ABSENT, code: 'unsupported' }] } }
        : {})),
    ...(interpretation.length > 0 ? { interpretation } : {}),
    ...(range ? { referenceRange: [{ ...rangeOf(range, unitOf(obx)), text: range }] } : {}),
    ...(note.length > 0 ? { note } : {}),
  };
}

/** The value types whose repetitions are lines of one text (see valueOf). */
const TEXT_TYPES: ReadonlySet<string> = new Set(['ST', 'TX', 'FT']);

/**
 * The OBXs whose value (OBX-5) repeats where Observation.value holds one: the first is taken,
 * and the sender is told the others were not (ERR 102, a warning), rather than their loss
 * going unseen, as it did until 2026-12-06. The message keeps them, stored as it came.
 */
export function repeatedValueWarnings(message: V2Message): FieldWarning[] {
  return message.all('OBX').flatMap((obx, i) => {
    const type = obx.value(2)?.toUpperCase() ?? '';
    const values = obx.repetitions(5).length;
    if (values < 2 || TEXT_TYPES.has(type)) return [];
    const which = i > 0 ? ` in OBX #${i + 1}` : '';
    return [
      {
        location: ['OBX', i + 1, 5],
        text: `OBX-5 (observation value)${which} repeats ${values} times, and an Observation holds one value: the first was taken, the others were not; send one OBX per value`,
      },
    ];
  });
}

/** The result times read here, by segment: field and name. */
const RESULT_TIMES: [segment: string, field: number, name: string][] = [
  ['OBR', 7, 'observation date/time'],
  ['OBR', 22, 'results report/status change'],
  ['OBX', 14, 'date/time of the observation'],
];

/**
 * The result times whose time of day is none (hour 24, minute 60): their date is taken, and
 * the sender told so, where until 2026-12-06 the time was dropped in silence.
 */
export function resultTimeWarnings(message: V2Message): FieldWarning[] {
  return RESULT_TIMES.flatMap(([name, field, what]) =>
    message.all(name).flatMap((segment, i): FieldWarning[] => {
      if (!hasInvalidTime(segment.value(field))) return [];
      const which = i > 0 ? ` in ${name} #${i + 1}` : '';
      return [
        {
          location: [name, i + 1, field],
          text: `${name}-${field} (${what})${which} has no valid time of day: its date was taken, the time left out`,
        },
      ];
    }),
  );
}

function valueOf(obx: V2Segment): Record<string, unknown> | undefined {
  const reps = obx.repetitions(5);
  const first = reps[0];
  if (!first) return undefined;
  switch (obx.value(2)?.toUpperCase() ?? '') {
    case 'NM': {
      const text = first.value(1);
      const number = numberOf(text);
      if (number !== undefined) return { valueQuantity: { value: number, ...unitOf(obx) } };
      // Labs send a bound in NM ("<5", ">=100"), though SN is for it: a comparator quantity,
      // as SN's. Other text (TNP, "see note") is what the lab reported: kept as it came, and so
      // is a number with more digits than a JavaScript number holds (`9007199254740993` was
      // stored as …992): changed, it would read as a measurement nobody made.
      const bound = BOUND.exec(text ?? '');
      if (bound && holdsExactly(bound[2]!)) {
        return {
          valueQuantity: { value: Number(bound[2]), comparator: bound[1], ...unitOf(obx) },
        };
      }
      return text?.trim() ? { valueString: text.trim() } : undefined;
    }
    case 'SN':
      return structuredNumeric(first, obx);
    case 'ST':
    case 'TX':
    case 'FT': {
      const text = reps.map((rep) => rep.value(1) ?? '').join('\n');
      return text ? { valueString: text } : undefined;
    }
    case 'CE':
    case 'CWE':
    case 'CNE': {
      const concept = codeableConceptOf(first);
      return concept ? { valueCodeableConcept: concept } : undefined;
    }
    case 'DT':
    case 'TS':
    case 'DTM': {
      // Read by its leading digits, `1931Zqx0719` was filed as the year 1931 until 2026-12-06:
      // what is not a date and time of HL7's shape is kept as the lab sent it, as NM text is.
      const text = first.value(1)?.trim();
      const when = text && DTM_SHAPE.test(text) ? dateTimeOf(text, obx.timeZone) : undefined;
      if (when) return { valueDateTime: when };
      return text ? { valueString: text } : undefined;
    }
    // Coded values of a table (HL7's for ID, the sender's for IS), as the IG maps them.
    case 'ID':
    case 'IS': {
      const code = first.value(1);
      return code ? { valueCodeableConcept: { coding: [{ code }] } } : undefined;
    }
    case 'TM': {
      const time = timeOf(first.value(1));
      return time ? { valueTime: time } : undefined;
    }
    case 'DR': {
      const start = dateTimeOf(first.value(1), obx.timeZone);
      const end = dateTimeOf(first.value(2), obx.timeZone);
      return start || end
        ? { valuePeriod: { ...(start ? { start } : {}), ...(end ? { end } : {}) } }
        : undefined;
    }
    case 'CQ': {
      // quantity^units, the units a CWE in subcomponents.
      const number = numberOf(first.value(1));
      return number === undefined
        ? undefined
        : {
            valueQuantity: {
              value: number,
              ...quantityUnit(first.value(2, 1), first.value(2, 2), first.value(2, 3)),
            },
          };
    }
    default:
      return undefined;
  }
}

/** TM (HHMM[SS[.S…]], any UTC offset dropped: FHIR's time has none) to a FHIR time. */
function timeOf(value: string | null | undefined): string | undefined {
  const match = /^([01]\d|2[0-3])([0-5]\d)?([0-5]\d)?(\.\d+)?(?:[+-]\d{4})?$/.exec(value ?? '');
  if (!match) return undefined;
  const [, hours, minutes = '00', seconds = '00', fraction = ''] = match;
  return `${hours}:${minutes}:${seconds}${fraction}`;
}

const NUMBER = '([+-]?(?:\\d+(?:\\.\\d*)?|\\.\\d+))';
const WHOLE_NUMBER = new RegExp(`^${NUMBER}$`);
const BETWEEN = new RegExp(`^\\s*${NUMBER}\\s*[-–]\\s*${NUMBER}\\s*$`);
const BOUND = new RegExp(`^\\s*([<>]=?)\\s*${NUMBER}\\s*$`);

/**
 * OBX-7 as a reference range's low and high, in OBX-6's units, when it is a plain numeric
 * range (`3.5-5.0`) or bound (`<200`, `>=60`; a strict bound is given as the limit, the text
 * saying which); other ranges (`negative`, `see note`) keep their text only.
 */
function rangeOf(
  text: string,
  unit: Record<string, unknown>,
): { low?: Record<string, unknown>; high?: Record<string, unknown> } {
  const between = BETWEEN.exec(text);
  if (between) {
    if (!holdsExactly(between[1]!) || !holdsExactly(between[2]!)) return {};
    const [low, high] = [Number(between[1]), Number(between[2])];
    return low <= high ? { low: { value: low, ...unit }, high: { value: high, ...unit } } : {};
  }
  const bound = BOUND.exec(text);
  if (!bound || !holdsExactly(bound[2]!)) return {};
  const limit = { value: Number(bound[2]), ...unit };
  return bound[1]!.startsWith('>') ? { low: limit } : { high: limit };
}

/** A number as written, or undefined (also for one a JavaScript number cannot hold exactly). */
function numberOf(text: string | null | undefined): number | undefined {
  const trimmed = text?.trim();
  if (!trimmed || !WHOLE_NUMBER.test(trimmed) || !holdsExactly(trimmed)) return undefined;
  return Number(trimmed);
}

/** OBX-6 (CWE) as a Quantity's unit, system and code. */
function unitOf(obx: V2Segment): Record<string, unknown> {
  const unit = obx.repetitions(6)[0];
  return unit ? quantityUnit(unit.value(1), unit.value(2), unit.value(3)) : {};
}

/** A unit's code, text and coding system (a CWE's first three) as a Quantity's. */
function quantityUnit(
  code: string | null | undefined,
  text: string | null | undefined,
  system: string | null | undefined,
): Record<string, unknown> {
  if (!code) return {};
  const ucum = system?.toUpperCase() === 'UCUM';
  return {
    unit: text ?? code,
    ...(ucum ? { system: 'http://unitsofmeasure.org', code } : {}),
  };
}

/** The comparators FHIR's Quantity has (`=` and none are a plain quantity). */
const COMPARATORS: ReadonlySet<string> = new Set(['<', '>', '<=', '>=']);

/**
 * SN: comparator^number^separator^number, as a comparator quantity, a range (`-`) or a ratio
 * (`:`, `/`). What a Quantity, Range or Ratio cannot say (the comparator `<>`, not equal; the
 * separator or suffix `+`, as in a urine protein of `2+`; `.`) is a valueString of the value as
 * written, with its units (`<> 5 mg/dL`, `2+`), as the IG's OBX map does: until 2026-12-06 they
 * were dropped, and `<>^5` read as 5, `^2^+` as 2.
 */
function structuredNumeric(sn: V2Repetition, obx: V2Segment): Record<string, unknown> | undefined {
  const comparator = sn.value(1)?.trim() ?? '';
  const low = numberOf(sn.value(2));
  const separator = sn.value(3)?.trim() ?? '';
  const high = numberOf(sn.value(4));
  const unit = unitOf(obx);
  if (low === undefined) return undefined;
  const plainComparator = !comparator || comparator === '=' || COMPARATORS.has(comparator);
  // A Range's bounds are SimpleQuantities, which take no comparator.
  const boundedRange = separator === '-' && COMPARATORS.has(comparator);
  if (!plainComparator || boundedRange || !['', '-', ':', '/'].includes(separator)) {
    const number = [sn.value(2), separator, sn.value(4)].map((part) => part?.trim() ?? '');
    const text = [comparator, number.join(''), unit['unit'] as string | undefined]
      .filter((part) => part)
      .join(' ');
    return { valueString: text };
  }
  // The comparator goes on the numerator, as the IG's SN[Ratio] map has it: a titer sent as
  // `<^1^:^10` (none detected at the first dilution) was stored as 1:10 until 2026-12-06, a
  // positive titer.
  if (separator === ':' || separator === '/') {
    const numerator = { value: low, ...(COMPARATORS.has(comparator) ? { comparator } : {}) };
    return high === undefined
      ? undefined
      : { valueRatio: { numerator, denominator: { value: high } } };
  }
  if (separator === '-') {
    return high === undefined
      ? undefined
      : { valueRange: { low: { value: low, ...unit }, high: { value: high, ...unit } } };
  }
  return {
    valueQuantity: {
      value: low,
      ...(COMPARATORS.has(comparator) ? { comparator } : {}),
      ...unit,
    },
  };
}
