import type { V2Repetition, V2Segment } from '../message/v2-message.js';
import { codeableConceptOf, dateTimeOf, identifierOf, type Identifier } from './datatypes.js';

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

export type EncounterStatus = 'planned' | 'in-progress' | 'finished' | 'cancelled' | 'unknown';

export interface EncounterLocation {
  location: { reference?: string; display: string };
  status: 'active' | 'completed';
}

/** Locations named by a feed are found again by their name under this system. */
export const LOCATION_SYSTEM = 'urn:carevault:v2:location';

/**
 * The Location a PL names, one per distinct name (`4 East, room 136, bed B, GHH`), so that
 * `Encounter?location=` and `location.name` find who was there.
 */
export function locationResource(display: string): {
  identifier: Identifier;
  resource: Record<string, unknown>;
} {
  const identifier = { system: LOCATION_SYSTEM, value: display };
  return {
    identifier,
    resource: {
      resourceType: 'Location',
      identifier: [identifier],
      status: 'active',
      mode: 'instance',
      name: display,
    },
  };
}

/**
 * A PL (person location: point of care, room, bed, facility, ... building, floor) as an
 * Encounter location named by its parts, `4 East, room 136, bed B, CommunityHospital`; the
 * processor links it to the Location of that name.
 */
export function locationOf(pl: V2Repetition | undefined): EncounterLocation | undefined {
  if (!pl) return undefined;
  const part = (component: number, label = ''): string | undefined => {
    const value = pl.value(component)?.trim();
    if (!value) return undefined;
    // `Bed 03` is not said again as `bed Bed 03`.
    return value.toLowerCase().startsWith(label.trim()) ? value : `${label}${value}`;
  };
  const parts = [
    part(1),
    part(2, 'room '),
    part(3, 'bed '),
    part(8, 'floor '),
    part(7),
    part(4),
  ].filter((value): value is string => value !== undefined);
  return parts.length > 0
    ? { location: { display: parts.join(', ') }, status: 'active' }
    : undefined;
}

/**
 * PV1 (and PV2, if sent) to an Encounter (v2-to-FHIR segment maps PV1[Encounter] and
 * PV2[Encounter]): class, visit number, assigned location (PV1-3), admit and discharge times,
 * admit reason (PV2-3) and length of stay in days (PV2-11). The status comes from the trigger event.
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
  const visit = pv1.repetitions(19)[0];
  const identifier = visit ? identifierOf(visit, senderSystem) : undefined;
  const start = dateTimeOf(pv1.value(44));
  const end = dateTimeOf(pv1.value(45));
  const reason = codeableConceptOf(pv2?.repetitions(3)[0]);
  const location = locationOf(pv1.repetitions(3)[0]);
  const days = Number(pv2?.value(11));
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
      subject: { reference: `Patient/${patientId}` },
      ...(location ? { location: [location] } : {}),
      ...(start || end ? { period: { ...(start ? { start } : {}), ...(end ? { end } : {}) } } : {}),
      ...(Number.isFinite(days) && days >= 0 && pv2?.value(11)
        ? { length: { value: days, unit: 'd', system: 'http://unitsofmeasure.org', code: 'd' } }
        : {}),
      ...(reason ? { reasonCode: [reason] } : {}),
    },
  };
}
