import { periodInOrder } from '../../fhir/period-order.js';
import type { V2Repetition, V2Segment, V2Value } from '../message/v2-message.js';
import {
  annotationsOf,
  codeableConceptOf,
  dateTimeOf,
  practitionerOf,
  type Identifier,
} from './datatypes.js';
import { exactNumberOf } from './numeric.js';
import { periodOf, repeatPatternOf } from './order-timing.js';
import { authoredOf, orderStatusOf, priorityOf } from './orders.js';

/**
 * An ORC with its RXE (and the RXR after that) to a MedicationRequest (v2-to-FHIR
 * RXE[MedicationRequest]): the give code as the medication (with its `components`, RXC, a
 * compound: see medicationOf), the give amount and units as the dose, the first RXR's route,
 * when and how often from its TQ1 (`timing`: the RXE's, else the ORC's; see timingOf), and the
 * priority of that TQ1, else of RXE-1 or ORC-7. Undefined with neither code nor component.
 */
export function medicationRequestOf(
  orc: V2Segment | undefined,
  rxe: V2Segment,
  rxr: V2Segment | undefined,
  patientId: string,
  identifiers: Identifier[],
  senderSystem?: string,
  timing?: V2Segment,
  components: readonly V2Segment[] = [],
): Record<string, unknown> | undefined {
  return requestOf(orc, rxe, GIVE, rxr, patientId, identifiers, senderSystem, timing, components);
}

/** Where an order's fields are: RXE (an encoded give) or RXO (a pharmacy order, ORM). */
interface OrderFields {
  segment: 'RXE' | 'RXO';
  code: number;
  amount: number;
  units: number;
  dispensed: number;
  dispensedUnits: number;
  refills: number;
  /** The TQ of feeds before v2.5, in the segment (RXE-1), else none. */
  quantityTiming?: number;
}

const GIVE: OrderFields = {
  segment: 'RXE',
  code: 2,
  amount: 3,
  units: 5,
  dispensed: 10,
  dispensedUnits: 11,
  refills: 12,
  quantityTiming: 1,
};

const REQUESTED: OrderFields = {
  segment: 'RXO',
  code: 1,
  amount: 2,
  units: 4,
  dispensed: 11,
  dispensedUnits: 12,
  refills: 13,
};

/**
 * An ORC with its RXO (ORM^O01's pharmacy order, and the RXR after it) to a MedicationRequest,
 * as the IG's RXO[MedicationRequest] map has it: the requested give code (RXO-1), amount and
 * units (RXO-2, RXO-4), dispense amount and units (RXO-11, RXO-12), refills (RXO-13), and the
 * rest as an RXE's (see medicationRequestOf). Until 2026-12-07 such an order was filed as a
 * ServiceRequest without a code: a prescription that said nothing of its drug.
 */
export function medicationRequestOfRxo(
  orc: V2Segment | undefined,
  rxo: V2Segment,
  rxr: V2Segment | undefined,
  patientId: string,
  identifiers: Identifier[],
  senderSystem?: string,
  timing?: V2Segment,
  components: readonly V2Segment[] = [],
): Record<string, unknown> | undefined {
  const fields = REQUESTED;
  return requestOf(orc, rxo, fields, rxr, patientId, identifiers, senderSystem, timing, components);
}

function requestOf(
  orc: V2Segment | undefined,
  rxe: V2Segment,
  fields: OrderFields,
  rxr: V2Segment | undefined,
  patientId: string,
  identifiers: Identifier[],
  senderSystem: string | undefined,
  timing: V2Segment | undefined,
  components: readonly V2Segment[],
): Record<string, unknown> | undefined {
  const field = (n: number) => `${fields.segment}-${n}`;
  const medication = medicationOf(rxe.repetitions(fields.code)[0], components);
  if (!medication) return undefined;
  const authored = authoredOf(orc);
  const amount = exactNumberOf(rxe.value(fields.amount), field(fields.amount));
  const dose = amount !== undefined && amount >= 0 ? amount : undefined;
  const route = codeableConceptOf(rxr?.repetitions(1)[0]);
  // The prescriber (ORC-12), and what the pharmacy dispenses: RXE-10 of RXE-11's units, with
  // RXE-12 refills (the IG's RXE map; all three were dropped until 2026-12-06).
  const requester = practitionerOf(orc?.repetitions(12)[0], senderSystem);
  const dispensed = exactNumberOf(rxe.value(fields.dispensed), field(fields.dispensed));
  const refills = exactNumberOf(rxe.value(fields.refills), field(fields.refills));
  const dispenseRequest = {
    ...(dispensed !== undefined && dispensed >= 0
      ? { quantity: quantityOf(dispensed, rxe.repetitions(fields.dispensedUnits)[0]) }
      : {}),
    ...(refills !== undefined && Number.isInteger(refills) && refills >= 0
      ? { numberOfRepeatsAllowed: refills }
      : {}),
  };
  const tq = fields.quantityTiming;
  const when = timingOf(timing, tq ? rxe.value(tq, 2, 1) : orc?.value(7, 2, 1));
  const dosage = {
    ...(Object.keys(when).length > 0 ? { timing: when } : {}),
    ...(dose !== undefined
      ? { doseAndRate: [{ doseQuantity: quantityOf(dose, rxe.repetitions(fields.units)[0]) }] }
      : {}),
    ...(route ? { route } : {}),
  };
  return {
    resourceType: 'MedicationRequest',
    ...(identifiers.length > 0 ? { identifier: identifiers } : {}),
    status: orderStatusOf(orc, 'MedicationRequest') ?? 'active',
    intent: 'order',
    ...priorityOf(timing?.value(9), tq ? rxe.value(tq, 6) : undefined, orc?.value(7, 6)),
    ...medication,
    subject: { reference: `Patient/${patientId}` },
    ...(authored?.includes('T') ? { authoredOn: authored } : {}),
    ...(requester ? { requester: { type: 'Practitioner', ...requester } } : {}),
    ...(Object.keys(dosage).length > 0 ? { dosageInstruction: [dosage] } : {}),
    ...(Object.keys(dispenseRequest).length > 0 ? { dispenseRequest } : {}),
  };
}

/**
 * When a prescription is given, as the IG's TQ1 map has it: the repeat pattern (TQ1-3, else
 * RXE-1's interval of feeds before v2.5, or an RXO's ORC-7.2: see repeatPatternOf) as the
 * Timing's code, and its period (periodOf), TQ1-7 and TQ1-8 as its bounds (the end only when
 * after the start, per-1). Not TQ1-2, which the IG maps to the dose RXE-3 (RXO-2) already
 * gives, nor TQ1-4, which it maps to `timing.event`, a dateTime that a time of no date is not.
 * Dropped until 2026-12-07: a prescription's dose arrived with no frequency, and a pharmacist
 * or a medication list read 5 mg of amlodipine with no word of how often.
 */
function timingOf(
  timing: V2Segment | undefined,
  interval: V2Value | undefined,
): Record<string, unknown> {
  const start = dateTimeOf(timing?.value(7), timing?.timeZone);
  const end = dateTimeOf(timing?.value(8), timing?.timeZone);
  const bounds = {
    ...(start ? { start } : {}),
    ...(end && (!start || periodInOrder(start, end)) ? { end } : {}),
  };
  const repeat = {
    ...(Object.keys(bounds).length > 0 ? { boundsPeriod: bounds } : {}),
    ...periodOf(timing),
  };
  return {
    ...(Object.keys(repeat).length > 0 ? { repeat } : {}),
    ...repeatPatternOf(timing, interval),
  };
}

/** The id of the Medication an order or dispense of components contains (see medicationOf). */
const COMPOUND = 'compound';

/**
 * What an order or dispense gives, its medication[x]: its code (RXE-2, RXO-1, RXD-2) as a
 * CodeableConcept, or, for a compound (an IV admixture, a compounded cream: the RXC after it),
 * a Medication it contains, of that code and of an ingredient per component, as FHIR's v2
 * mapping of Medication has it: RXC-2 the ingredient, RXC-3 of RXC-4's units its strength (per
 * 1 of the compound), and an additive (RXC-1 A) active. A base (B: the saline an additive is
 * mixed into, or a dextrose) is not said to be inactive, which an allergy check would skip. A
 * component of no code or text is no ingredient. Dropped until 2026-12-07: a vancomycin
 * admixture's order said nothing of the bag, its volume or the amount added. Undefined with
 * neither code nor ingredient.
 */
export function medicationOf(
  code: V2Repetition | undefined,
  components: readonly V2Segment[],
): Record<string, unknown> | undefined {
  const concept = codeableConceptOf(code);
  const ingredient = components
    .map(ingredientOf)
    .filter((one): one is Record<string, unknown> => one !== undefined);
  if (ingredient.length === 0) return concept ? { medicationCodeableConcept: concept } : undefined;
  return {
    contained: [
      {
        resourceType: 'Medication',
        id: COMPOUND,
        ...(concept ? { code: concept } : {}),
        ingredient,
      },
    ],
    medicationReference: { reference: `#${COMPOUND}` },
  };
}

/** A component (RXC) as a Medication's ingredient (see medicationOf); undefined of no code. */
function ingredientOf(rxc: V2Segment): Record<string, unknown> | undefined {
  const item = codeableConceptOf(rxc.repetitions(2)[0]);
  if (!item) return undefined;
  const amount = exactNumberOf(rxc.value(3), 'RXC-3');
  return {
    itemCodeableConcept: item,
    ...(rxc.value(1)?.toUpperCase() === 'A' ? { isActive: true } : {}),
    ...(amount !== undefined && amount >= 0
      ? {
          strength: {
            numerator: quantityOf(amount, rxc.repetitions(4)[0]),
            denominator: { value: 1 },
          },
        }
      : {}),
  };
}

/** An amount in a CWE of units: the unit's text, and its UCUM code where the sender says so. */
function quantityOf(value: number, unit: V2Repetition | undefined): Record<string, unknown> {
  return {
    value,
    ...(unit?.value(1) ? { unit: unit.value(2) ?? unit.value(1) } : {}),
    ...(unit?.value(1) && unit.value(3)?.toUpperCase() === 'UCUM'
      ? { system: 'http://unitsofmeasure.org', code: unit.value(1) }
      : {}),
  };
}

/**
 * An RXD (with the RXR after it) to a MedicationDispense (v2-to-FHIR RXD[MedicationDispense]):
 * the dispense code as the medication (with its `components`, RXC: see medicationOf), when it
 * was handed over, the actual dispense amount and units, the dispensing provider, the notes
 * (RXD-9, then the NTE after it, `comments`) and the route. Undefined with neither code (RXD-2)
 * nor component.
 */
export function medicationDispenseOf(
  rxd: V2Segment,
  rxr: V2Segment | undefined,
  patientId: string,
  identifier: Identifier | undefined,
  prescription: Record<string, unknown> | undefined,
  sender: string | undefined,
  components: readonly V2Segment[] = [],
  comments: readonly V2Segment[] = [],
): Record<string, unknown> | undefined {
  const medication = medicationOf(rxd.repetitions(2)[0], components);
  if (!medication) return undefined;
  const handedOver = dateTimeOf(rxd.value(3), rxd.timeZone);
  const amount = exactNumberOf(rxd.value(4), 'RXD-4');
  const units = rxd.repetitions(5)[0];
  const quantity =
    amount !== undefined && amount >= 0
      ? {
          value: amount,
          ...(units?.value(1) ? { unit: units.value(2) ?? units.value(1) } : {}),
        }
      : undefined;
  const performer = practitionerOf(rxd.repetitions(10)[0], sender);
  const notes = rxd
    .repetitions(9)
    .map((rep) => rep.value(2) ?? rep.value(1))
    .filter((text): text is string => !!text)
    .map((text) => ({ text }))
    .concat(annotationsOf(comments));
  const route = codeableConceptOf(rxr?.repetitions(1)[0]);
  return {
    resourceType: 'MedicationDispense',
    ...(identifier ? { identifier: [identifier] } : {}),
    status: 'completed',
    ...medication,
    subject: { reference: `Patient/${patientId}` },
    ...(performer ? { performer: [{ actor: { type: 'Practitioner', ...performer } }] } : {}),
    ...(prescription ? { authorizingPrescription: [prescription] } : {}),
    ...(quantity ? { quantity } : {}),
    ...(handedOver ? { whenHandedOver: handedOver } : {}),
    ...(notes.length > 0 ? { note: notes } : {}),
    ...(route ? { dosageInstruction: [{ route }] } : {}),
  };
}
