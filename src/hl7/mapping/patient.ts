import type { V2Segment } from '../message/v2-message.js';
import {
  addressOf,
  contactPointOf,
  dateOf,
  humanNameOf,
  identifierOf,
  organizationOf,
  practitionerOf,
  sameIdentifier,
  type Identifier,
} from './datatypes.js';

/**
 * Top-level Patient elements a message speaks about: a value replaces what is stored, null
 * (the field was `""`) removes it, and an element left out (the field was empty) is kept.
 */
export type PatientElements = Record<string, unknown>;

const GENDER: Record<string, string> = {
  M: 'male',
  F: 'female',
  O: 'other',
  A: 'other',
  U: 'unknown',
  N: 'unknown',
};

/**
 * PID to Patient elements (v2-to-FHIR segment map PID[Patient]); `senderSystem` stands in for
 * a missing assigning authority (see identifierOf).
 */
export function patientFromPid(
  pid: V2Segment,
  senderSystem?: string,
): { identifiers: Identifier[]; elements: PatientElements } {
  const identifiers = pid
    .repetitions(3)
    .map((cx) => identifierOf(cx, senderSystem))
    .filter((identifier): identifier is Identifier => identifier !== undefined);
  const elements: PatientElements = {};
  const set = (element: string, field: number, value: () => unknown): void => {
    const raw = pid.value(field);
    if (raw === null) elements[element] = null;
    else if (raw !== undefined) {
      const mapped = value();
      if (mapped !== undefined && !(Array.isArray(mapped) && mapped.length === 0)) {
        elements[element] = mapped;
      }
    }
  };
  set('name', 5, () => pid.repetitions(5).map(humanNameOf).filter(Boolean));
  set('birthDate', 7, () => dateOf(pid.value(7)));
  set('gender', 8, () => GENDER[pid.value(8)?.toUpperCase() ?? '']);
  set('address', 11, () => pid.repetitions(11).map(addressOf).filter(Boolean));
  const telecom = [
    ...pid.repetitions(13).map((xtn) => contactPointOf(xtn, 'home')),
    ...pid.repetitions(14).map((xtn) => contactPointOf(xtn, 'work')),
  ].filter(Boolean);
  if (pid.value(13) === null && pid.value(14) === null) elements['telecom'] = null;
  else if (telecom.length > 0) elements['telecom'] = telecom;
  const deceased = pid.value(30)?.toUpperCase();
  const deathTime = dateOf(pid.value(29));
  if (deathTime) elements['deceasedDateTime'] = deathTime;
  else if (deceased === 'Y' || deceased === 'N') elements['deceasedBoolean'] = deceased === 'Y';
  return { identifiers, elements };
}

/**
 * PD1 to Patient elements (v2-to-FHIR PD1[Patient]): the primary care provider (PD1-4) and
 * primary facility (PD1-3) become `generalPractitioner`, referred to by identifier and name.
 */
export function patientFromPd1(pd1: V2Segment, senderSystem?: string): PatientElements {
  if (pd1.value(3) === null && pd1.value(4) === null) return { generalPractitioner: null };
  const references = [
    ...pd1.repetitions(4).map((xcn) => practitionerOf(xcn, senderSystem)),
    ...pd1.repetitions(3).map((xon) => organizationOf(xon, senderSystem)),
  ].filter(Boolean);
  return references.length > 0 ? { generalPractitioner: references } : {};
}

/** A PID's identifiers and the Patient elements it and the PD1 give. */
export function patientFromSegments(
  pid: V2Segment,
  sender: string | undefined,
  pd1: V2Segment | undefined,
): { identifiers: Identifier[]; elements: PatientElements } {
  const fromPid = patientFromPid(pid, sender);
  return {
    identifiers: fromPid.identifiers,
    elements: { ...fromPid.elements, ...(pd1 ? patientFromPd1(pd1, sender) : {}) },
  };
}

/**
 * The stored Patient with a message's elements applied. Identifiers are merged, never dropped:
 * a message lists the ones its sender knows, not every one the patient has.
 */
export function applyPatient(
  current: Record<string, unknown> | undefined,
  identifiers: Identifier[],
  elements: PatientElements,
): Record<string, unknown> {
  const next: Record<string, unknown> = { ...(current ?? { resourceType: 'Patient' }) };
  for (const [element, value] of Object.entries(elements)) {
    if (value === null) delete next[element];
    else next[element] = value;
  }
  if ('deceasedDateTime' in elements) delete next['deceasedBoolean'];
  if ('deceasedBoolean' in elements) delete next['deceasedDateTime'];
  const known = (current?.['identifier'] as Identifier[] | undefined) ?? [];
  const added = identifiers.filter(
    (identifier) => !known.some((old) => sameIdentifier(old, identifier)),
  );
  next['identifier'] = [...known, ...added];
  delete next['meta'];
  return next;
}

/** FHIR search criteria matching any of the identifiers (with a system: without one, a bare value could match anyone's). */
export function identifierCriteria(identifiers: Identifier[]): string | undefined {
  const terms = identifiers
    .filter((identifier) => identifier.system)
    .map((identifier) => `${escapeSearch(identifier.system!)}|${escapeSearch(identifier.value)}`)
    .sort();
  return terms.length > 0 ? `identifier=${terms.map(encodeURIComponent).join(',')}` : undefined;
}

/** FHIR search escapes for `,`, `|`, `$` and `\` inside a value. */
export function escapeSearch(value: string): string {
  return value.replace(/[\\,|$]/g, (char) => `\\${char}`);
}
