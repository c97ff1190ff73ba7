import type { V2Repetition, V2Segment } from '../message/v2-message.js';
import {
  codeableConceptIn,
  codeableConceptOf,
  dateTimeOf,
  identifierOf,
  practitionerOf,
  type Identifier,
} from './datatypes.js';
import { exactNumberOf } from './numeric.js';

const ACT_CODE = 'http://terminology.hl7.org/CodeSystem/v3-ActCode';
const V2_0004 = 'http://terminology.hl7.org/CodeSystem/v2-0004';

/** PV1-2 patient class (table 0004) to the v3 encounter class, where one fits. */
const CLASS: Record<string, { code: string; display: string }> = {
  E: { code: 'EMER', display: 'emergency' },
  I: { code: 'IMP', display: 'inpatient encounter' },
  O: { code: 'AMB', display: 'ambulatory' },
  P: { code: 'PRENC', display: 'pre-admission' },
  R: { code: 'AMB', display: 'ambulatory' },
  B: { code: 'IMP', display: 'inpatient encounter' },
};

const PARTICIPATION_TYPE = 'http://terminology.hl7.org/CodeSystem/v3-ParticipationType';

/** The doctors a PV1 names, with the v3 participation type the IG gives each. */
const PARTICIPANTS: { field: number; code: string; display: string }[] = [
  { field: 7, code: 'ATND', display: 'attender' },
  { field: 8, code: 'REF', display: 'referrer' },
  { field: 9, code: 'CON', display: 'consultant' },
  { field: 17, code: 'ADM', display: 'admitter' },
];

export type EncounterStatus =
  'planned' | 'in-progress' | 'onleave' | 'finished' | 'cancelled' | 'unknown';

export interface EncounterLocation {
  location: { reference?: string; display: string };
  status: 'active' | 'completed';
}

/** Locations named by a feed are found again by their name under this system. */
export const LOCATION_SYSTEM = 'urn:carevault:v2:location';
const PHYSICAL_TYPE = 'http://terminology.hl7.org/CodeSystem/location-physical-type';

/** One level of a PL, broadest first, with its FHIR physical type. */
export interface LocationLevel {
  display: string;
  physicalType: { code: string; display: string };
}

/**
 * The PL components that name places, broadest first (v2-to-FHIR PL[Location]): facility
 * (PL-4), building (PL-7), floor (PL-8), point of care (PL-1), room (PL-2), bed (PL-3).
 */
const LEVELS: { component: number; code: string; display: string }[] = [
  { component: 4, code: 'si', display: 'Site' },
  { component: 7, code: 'bu', display: 'Building' },
  { component: 8, code: 'lvl', display: 'Level' },
  { component: 1, code: 'wa', display: 'Ward' },
  { component: 2, code: 'ro', display: 'Room' },
  { component: 3, code: 'bd', display: 'Bed' },
];

/** How a place is named by its parts: most specific first, then floor, building, facility. */
const NAME_ORDER: { component: number; label: string }[] = [
  { component: 1, label: '' },
  { component: 2, label: 'room ' },
  { component: 3, label: 'bed ' },
  { component: 8, label: 'floor ' },
  { component: 7, label: '' },
  { component: 4, label: '' },
];

/**
 * The Location a level names, one per distinct name (`4 East, room 136, bed B, GHH`), part of
 * the level above it, so that `Encounter?location=` and `location.name` find who was there,
 * and `Location?partof=` what a ward holds.
 */
export function locationResource(
  level: LocationLevel,
  partOf?: string,
): { identifier: Identifier; resource: Record<string, unknown> } {
  const identifier = { system: LOCATION_SYSTEM, value: level.display };
  return {
    identifier,
    resource: {
      resourceType: 'Location',
      identifier: [identifier],
      status: 'active',
      mode: 'instance',
      name: level.display,
      physicalType: { coding: [{ system: PHYSICAL_TYPE, ...level.physicalType }] },
      ...(partOf ? { partOf: { reference: partOf } } : {}),
    },
  };
}

/**
 * A PL (person location) as the places it names, broadest first: `4E^136^B^GHH` is the site
 * GHH, the ward `4E, GHH`, the room `4E, room 136, GHH` and the bed `4E, room 136, bed B, GHH`.
 * The last is where the patient is.
 */
export function locationChain(pl: V2Repetition | undefined): LocationLevel[] {
  if (!pl) return [];
  const part = (component: number, label = ''): string | undefined => {
    const value = pl.value(component)?.trim();
    if (!value) return undefined;
    // `Bed 03` is not said again as `bed Bed 03`.
    return value.toLowerCase().startsWith(label.trim()) ? value : `${label}${value}`;
  };
  const present = LEVELS.filter((level) => part(level.component) !== undefined);
  return present.map((level, i) => {
    const included = new Set(present.slice(0, i + 1).map((l) => l.component));
    const display = NAME_ORDER.filter(({ component }) => included.has(component))
      .map(({ component, label }) => part(component, label)!)
      .join(', ');
    return { display, physicalType: { code: level.code, display: level.display } };
  });
}

/** A PL as an Encounter location named by all its parts; the processor links the Location. */
export function locationOf(pl: V2Repetition | undefined): EncounterLocation | undefined {
  const place = locationChain(pl).at(-1);
  return place ? { location: { display: place.display }, status: 'active' } : undefined;
}

/** The visit number (PV1-19) that keys an Encounter. */
export function visitIdentifier(pv1: V2Segment, senderSystem?: string): Identifier | undefined {
  const visit = pv1.repetitions(19)[0];
  return visit ? identifierOf(visit, senderSystem) : undefined;
}

/**
 * PV1 (and PV2, if sent) to an Encounter (v2-to-FHIR segment maps PV1[Encounter] and
 * PV2[Encounter]): class, visit number, assigned location (PV1-3), the attending, referring,
 * consulting and admitting doctors (PV1-7, 8, 9, 17), hospital service (PV1-10), admit source
 * (PV1-14), discharge disposition (PV1-36), admit and discharge times, admit reason (PV2-3) and
 * length of stay in days (PV2-11). The status comes from the trigger event.
 */
export function encounterFromPv1(
  pv1: V2Segment,
  patientId: string,
  status: EncounterStatus,
  senderSystem?: string,
  pv2?: V2Segment,
): { identifier: Identifier | undefined; resource: Record<string, unknown> } {
  const patientClass = pv1.value(2)?.toUpperCase();
  const mapped = patientClass ? CLASS[patientClass] : undefined;
  const identifier = visitIdentifier(pv1, senderSystem);
  const start = dateTimeOf(pv1.value(44), pv1.timeZone);
  const end = dateTimeOf(pv1.value(45), pv1.timeZone);
  const reason = codeableConceptOf(pv2?.repetitions(3)[0]);
  const location = locationOf(pv1.repetitions(3)[0]);
  const days = exactNumberOf(pv2?.value(11), 'PV2-11');
  const participants = PARTICIPANTS.flatMap(({ field, code, display }) =>
    pv1
      .repetitions(field)
      .map((xcn) => practitionerOf(xcn, senderSystem))
      .filter((individual) => individual !== undefined)
      .map((individual) => ({
        type: [{ coding: [{ system: PARTICIPATION_TYPE, code, display }] }],
        individual: { type: 'Practitioner', ...individual },
      })),
  );
  const service = codeableConceptIn(pv1.repetitions(10)[0], '0069');
  const admitSource = codeableConceptIn(pv1.repetitions(14)[0], '0023');
  const disposition = codeableConceptIn(pv1.repetitions(36)[0], '0112');
  const hospitalization = {
    ...(admitSource ? { admitSource } : {}),
    ...(disposition ? { dischargeDisposition: disposition } : {}),
  };
  return {
    identifier,
    resource: {
      resourceType: 'Encounter',
      ...(identifier ? { identifier: [identifier] } : {}),
      status,
      class: mapped
        ? { system: ACT_CODE, ...mapped }
        : patientClass
          ? { system: V2_0004, code: patientClass }
          : { system: 'http://terminology.hl7.org/CodeSystem/v3-NullFlavor', code: 'UNK' },
      ...(service ? { serviceType: service } : {}),
      subject: { reference: `Patient/${patientId}` },
      ...(participants.length > 0 ? { participant: participants } : {}),
      ...(location ? { location: [location] } : {}),
      ...(start || end ? { period: { ...(start ? { start } : {}), ...(end ? { end } : {}) } } : {}),
      ...(days !== undefined && days >= 0
        ? { length: { value: days, unit: 'd', system: 'http://unitsofmeasure.org', code: 'd' } }
        : {}),
      ...(reason ? { reasonCode: [reason] } : {}),
      ...(Object.keys(hospitalization).length > 0 ? { hospitalization } : {}),
    },
  };
}
