import type { V2Message, V2Segment, V2Value } from '../message/v2-message.js';
import { NOT_IN_TABLE, type FieldWarning } from './patient.js';
import {
  annotationsOf,
  codeableConceptOf,
  dateTimeOf,
  practitionerOf,
  sameIdentifier,
  typedIdentifier,
  type Identifier,
} from './datatypes.js';
import { identifierOfEi } from './observation.js';
import { occurrenceOf, quantityOf } from './order-timing.js';

/** HL7 table 0119, order control codes, as v2.3 to v2.9 list them. */
const ORDER_CONTROLS: ReadonlySet<string> = new Set(
  (
    'AF CA CH CN CP CR DC DE DF DR FU HD HR LI MC NA NR NW OC OD OE OF OH OK OP OR PA PR RA RE ' +
    'RF RL RO RP RQ RR RU SC SN SR SS UA UC UD UF UH UM UN UR UX XO XR XX'
  ).split(' '),
);

/**
 * The ORCs whose order control (ORC-1) is no code of table 0119 (a local `ZZ`, a typo): such
 * an order is filed as a new, active one, and the sender is told (ERR 103, a warning), where it
 * was taken in silence until 2026-12-06. A warning, not an AE: one of the shared samples sends
 * `NM`, and a feed's queue would stop on it.
 */
export function orderControlWarnings(message: V2Message): FieldWarning[] {
  return message.all('ORC').flatMap((orc, i) => {
    const control = orc.value(1);
    if (!control || ORDER_CONTROLS.has(control.toUpperCase())) return [];
    const which = i > 0 ? ` in ORC #${i + 1}` : '';
    return [
      {
        location: ['ORC', i + 1, 1],
        text: `ORC-1 (order control)${which} ${NOT_IN_TABLE} 0119: the order was filed as a new one; the rest was taken`,
      },
    ];
  });
}

/**
 * ORC-5 order status (table 0038) to ServiceRequest.status, as the IG's OrderStatus map has it
 * (A, some results in, is active as IP is).
 */
const ORDER_STATUS: Record<string, string> = {
  A: 'active',
  CA: 'revoked',
  CM: 'completed',
  DC: 'revoked',
  ER: 'entered-in-error',
  HD: 'on-hold',
  IP: 'active',
  RP: 'revoked',
  SC: 'active',
};

/**
 * ORC-1 order control (table 0119) to ServiceRequest.status when ORC-5 says nothing, as the
 * IG's OrderControlCode map has it, but for CA and HD: the IG reads them as requests not yet
 * honoured (active), where the orders this feed files come from their placer, whose cancel or
 * hold is the decision. Codes the map leaves out (SC, XO, RE...) change no status.
 */
const ORDER_CONTROL_STATUS: Record<string, string> = {
  AF: 'active',
  CA: 'revoked',
  CR: 'revoked',
  DC: 'revoked',
  DF: 'revoked',
  DR: 'revoked',
  FU: 'completed',
  HD: 'on-hold',
  HR: 'on-hold',
  NW: 'active',
  OC: 'revoked',
  OD: 'revoked',
  OH: 'on-hold',
  OK: 'active',
  PR: 'active',
  PY: 'active',
  RL: 'active',
  RO: 'active',
  RQ: 'active',
};

/** ORC-5 (table 0038) to MedicationRequest.status: a discontinued prescription is stopped. */
const MEDICATION_ORDER_STATUS: Record<string, string> = {
  A: 'active',
  CA: 'cancelled',
  CM: 'completed',
  DC: 'stopped',
  ER: 'entered-in-error',
  HD: 'on-hold',
  IP: 'active',
  RP: 'stopped',
  SC: 'active',
};

/**
 * ORC-1 (table 0119) to MedicationRequest.status when ORC-5 says nothing: the ServiceRequest
 * map's, a revoked order cancelled when it never started (CA, CR, OC, DF) and stopped when
 * discontinued (DC, OD, DR).
 */
const MEDICATION_CONTROL_STATUS: Record<string, string> = {
  AF: 'active',
  CA: 'cancelled',
  CR: 'cancelled',
  DC: 'stopped',
  DF: 'cancelled',
  DR: 'stopped',
  FU: 'completed',
  HD: 'on-hold',
  HR: 'on-hold',
  NW: 'active',
  OC: 'cancelled',
  OD: 'stopped',
  OH: 'on-hold',
  OK: 'active',
  PR: 'active',
  PY: 'active',
  RL: 'active',
  RO: 'active',
  RQ: 'active',
};

/**
 * An order's status as its ORC says it: ORC-5 (order status) first, ORC-1 (order control) only
 * when ORC-5 holds no code of table 0038, as the IG's ORC map has it. Until 2026-12-06 ORC-1
 * came first, and a prescription kept `active` through OD, DR and an ORC-5 of DC or CM. None
 * when neither says (a status change, SC, of no ORC-5): the order keeps the status it has.
 */
export function orderStatusOf(
  orc: V2Segment | undefined,
  kind: 'ServiceRequest' | 'MedicationRequest',
): string | undefined {
  const [byStatus, byControl] =
    kind === 'ServiceRequest'
      ? [ORDER_STATUS, ORDER_CONTROL_STATUS]
      : [MEDICATION_ORDER_STATUS, MEDICATION_CONTROL_STATUS];
  const status = orc?.value(5)?.toUpperCase() ?? '';
  const control = orc?.value(1)?.toUpperCase() ?? '';
  return byStatus[status] ?? byControl[control];
}

/**
 * When the order was placed: ORC-9 of a new order (ORC-1 NW) only, as the IG maps it. ORC-9 is
 * the time of the transaction, and that of a discontinuation or a status change is not when the
 * order was written (until 2026-12-06 an OD's time became the order's).
 */
export function authoredOf(orc: V2Segment | undefined): string | undefined {
  if (orc?.value(1)?.toUpperCase() !== 'NW') return undefined;
  return dateTimeOf(orc.value(9), orc.timeZone);
}

/**
 * Whether an order message carries the whole order, to replace what is stored: a new order
 * (NW), or one with no ORC (an OBR alone). Other controls (OD, DC, SC, XO...) change an order
 * that exists: see amendedOrder.
 */
export function carriesWholeOrder(orc: V2Segment | undefined): boolean {
  const control = orc?.value(1)?.toUpperCase();
  return !control || control === 'NW';
}

/**
 * ORC-1 codes that take an order back (cancel, discontinue, and their replies): about an order
 * already placed, which they cannot be filed without (see orderChangeOf).
 */
const WITHDRAWING_CONTROLS: ReadonlySet<string> = new Set([
  'CA',
  'CR',
  'DC',
  'DF',
  'DR',
  'OC',
  'OD',
]);

/**
 * ORC-1 codes that change, hold, release or report on an order already placed (table 0119: XO
 * and XR, HD, HR and OH, RL and OR, SC): v2 has the filler answer such a request for an order it
 * does not hold with UX, UH or UR (unable to), never a new order (see orderChangeOf).
 */
const AMENDING_CONTROLS: ReadonlySet<string> = new Set([
  'XO',
  'XR',
  'HD',
  'HR',
  'OH',
  'RL',
  'OR',
  'SC',
]);

/** What an order message does to the order it names (see upsertOrder). */
export interface OrderChange {
  /** It carries the whole order (see carriesWholeOrder). */
  whole: boolean;
  /** The status it gives, if any (see orderStatusOf). */
  status: string | undefined;
  /** The ORC-1 code that takes the order back, when it does. */
  withdraws?: string;
  /** The ORC-1 code that changes, holds, releases or reports on the order, when it does. */
  amends?: string;
}

export function orderChangeOf(
  orc: V2Segment | undefined,
  kind: 'ServiceRequest' | 'MedicationRequest',
): OrderChange {
  const control = orc?.value(1)?.toUpperCase();
  return {
    whole: carriesWholeOrder(orc),
    status: orderStatusOf(orc, kind),
    ...(control && WITHDRAWING_CONTROLS.has(control) ? { withdraws: control } : {}),
    ...(control && AMENDING_CONTROLS.has(control) ? { amends: control } : {}),
  };
}

type Resource = Record<string, unknown>;

const isObject = (value: unknown): value is Resource =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** A prescription's elements of what it gives (see medicationOf). */
const GIVES = ['medicationCodeableConcept', 'medicationReference', 'contained'];

/**
 * A stored order (ServiceRequest, MedicationRequest) as a control message for it leaves it:
 * what the message carries replaces what is stored, what it does not carry stays (the authored
 * time, the requester, the route a discontinuation does not repeat; until 2026-12-06 the whole
 * order was written over, and they were lost), and the status is the message's when it gives
 * one (`status`, see orderStatusOf), else the stored one. The dosage and the dispense request
 * are kept part by part (a dose sent without its route keeps the route); identifiers are
 * added to. A drug sent replaces the stored one with its components (until 2026-12-07 a
 * compound's, see medicationOf, were not kept at all).
 */
export function amendedOrder(
  stored: Resource,
  mapped: Resource,
  status: string | undefined,
): Resource {
  // What it gives (medication[x], with a compound's contained Medication) is replaced whole:
  // R4 allows one medication[x], and a compound's old components are not the new ones'.
  const base = GIVES.some((element) => element in mapped)
    ? Object.fromEntries(Object.entries(stored).filter(([element]) => !GIVES.includes(element)))
    : stored;
  const merged: Resource = { ...base, ...mapped, status: status ?? stored['status'] };
  const instruction = (resource: Resource) =>
    (resource['dosageInstruction'] as unknown[] | undefined)?.[0];
  const [oldDosage, newDosage] = [instruction(stored), instruction(mapped)];
  if (isObject(oldDosage) && isObject(newDosage)) {
    merged['dosageInstruction'] = [{ ...oldDosage, ...newDosage }];
  }
  const [oldDispense, newDispense] = [stored['dispenseRequest'], mapped['dispenseRequest']];
  if (isObject(oldDispense) && isObject(newDispense)) {
    merged['dispenseRequest'] = { ...oldDispense, ...newDispense };
  }
  const sent = (mapped['identifier'] as Identifier[] | undefined) ?? [];
  const kept = ((stored['identifier'] as Identifier[] | undefined) ?? []).filter(
    (old) => !sent.some((identifier) => sameIdentifier(identifier, old)),
  );
  if (sent.length + kept.length > 0) merged['identifier'] = [...sent, ...kept];
  return merged;
}

/**
 * The order's own identifiers: placer (ORC-2) and filler (ORC-3) order numbers, else the same
 * numbers in its OBR (OBR-2, OBR-3), where senders without an ORC put them, typed PLAC and
 * FILL (table 0203) as the IG's ORC and OBR maps type them (untyped until 2026-12-06).
 */
export function orderIdentifiers(
  orc: V2Segment | undefined,
  fallbackSystem?: string,
  obr?: V2Segment,
): Identifier[] {
  const numbers = (segment: V2Segment | undefined) =>
    segment
      ? [
          typedIdentifier(identifierOfEi(segment.repetitions(2)[0], fallbackSystem), 'PLAC'),
          typedIdentifier(identifierOfEi(segment.repetitions(3)[0], fallbackSystem), 'FILL'),
        ].filter((identifier): identifier is Identifier => identifier !== undefined)
      : [];
  const ordered = numbers(orc);
  return ordered.length > 0 ? ordered : numbers(obr);
}

/**
 * Table 0485 (TQ1-9), and table 0027 before it (the sixth component of ORC-7, OBR-27, RXE-1),
 * to a request's priority, as the IG's map has it: P (pre-op), C (callback) and T (timing
 * critical) have none there.
 */
const PRIORITY: Record<string, string> = { S: 'stat', A: 'asap', R: 'routine' };

/**
 * An order's priority: the first of these fields the sender gives, mapped (see PRIORITY).
 * Dropped until 2026-12-07: a stat order was filed with none, and read as routine.
 */
export function priorityOf(...codes: V2Value[]): { priority?: string } {
  const code = codes.find((value) => !!value);
  const priority = code ? PRIORITY[code.toUpperCase()] : undefined;
  return priority ? { priority } : {};
}

/**
 * ORC with its OBR, when there is one, to a ServiceRequest (v2-to-FHIR ORC[ServiceRequest],
 * OBR[ServiceRequest]). An order detailed by another segment (RXO…) keeps its numbers and status.
 */
export function serviceRequestOf(
  orc: V2Segment | undefined,
  obr: V2Segment | undefined,
  patientId: string,
  identifiers: Identifier[],
  details: { notes?: readonly V2Segment[]; senderSystem?: string; timing?: V2Segment } = {},
): Record<string, unknown> {
  const authored = authoredOf(orc);
  const code = obr ? codeableConceptOf(obr.repetitions(4)[0]) : undefined;
  // The ordering provider (ORC-12, else OBR-16), the reasons for the study (OBR-31) and the
  // order's comments (the NTE after its OBR: "fasting", a clinical question), as the IG maps them.
  const requester = practitionerOf(
    orc?.repetitions(12)[0] ?? obr?.repetitions(16)[0],
    details.senderSystem,
  );
  const reasonCode = (obr?.repetitions(31) ?? [])
    .map((reason) => codeableConceptOf(reason))
    .filter((reason) => reason !== undefined);
  const note = annotationsOf(details.notes ?? []);
  return {
    resourceType: 'ServiceRequest',
    ...(identifiers.length > 0 ? { identifier: identifiers } : {}),
    status: orderStatusOf(orc, 'ServiceRequest') ?? 'active',
    intent: 'order',
    // The order's TQ1 (v2.5 on), else ORC-7 or OBR-27 of the feeds before it.
    ...priorityOf(details.timing?.value(9), orc?.value(7, 6), obr?.value(27, 6)),
    ...(code ? { code } : {}),
    subject: { reference: `Patient/${patientId}` },
    ...quantityOf(details.timing, orc, obr),
    ...occurrenceOf(details.timing, orc, obr),
    ...(authored?.includes('T') ? { authoredOn: authored } : {}),
    ...(requester ? { requester: { type: 'Practitioner', ...requester } } : {}),
    ...(reasonCode.length > 0 ? { reasonCode } : {}),
    ...(note.length > 0 ? { note } : {}),
  };
}
