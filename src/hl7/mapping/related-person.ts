import type { V2Segment } from '../message/v2-message.js';
import {
  addressOf,
  codeableConceptOf,
  contactPointOf,
  dateOf,
  humanNameOf,
  identifierOf,
  type Identifier,
} from './datatypes.js';

const GENDER: Record<string, string> = { M: 'male', F: 'female', O: 'other', U: 'unknown' };

/**
 * NK1 to a RelatedPerson (v2-to-FHIR NK1[RelatedPerson]): name, relationship and contact role,
 * address, phones, period, gender, birth date and the kin's own identifiers (NK1-33).
 * Undefined when the segment names nobody.
 */
export function relatedPersonFromNk1(
  nk1: V2Segment,
  patientId: string,
  senderSystem?: string,
): { identifiers: Identifier[]; resource: Record<string, unknown> } | undefined {
  const name = nk1.repetitions(2).map(humanNameOf).filter(Boolean);
  const identifiers = nk1
    .repetitions(33)
    .map((cx) => identifierOf(cx, senderSystem))
    .filter((identifier): identifier is Identifier => identifier !== undefined);
  if (name.length === 0 && identifiers.length === 0) return undefined;
  const relationship = [nk1.repetitions(3)[0], nk1.repetitions(7)[0]]
    .map(codeableConceptOf)
    .filter(Boolean);
  const address = nk1.repetitions(4).map(addressOf).filter(Boolean);
  const telecom = [
    ...nk1.repetitions(5).map((xtn) => contactPointOf(xtn, 'home')),
    ...nk1.repetitions(6).map((xtn) => contactPointOf(xtn, 'work')),
  ].filter(Boolean);
  const start = dateOf(nk1.value(8));
  const end = dateOf(nk1.value(9));
  const gender = GENDER[nk1.value(15)?.toUpperCase() ?? ''];
  const birthDate = dateOf(nk1.value(16));
  return {
    identifiers,
    resource: {
      resourceType: 'RelatedPerson',
      ...(identifiers.length > 0 ? { identifier: identifiers } : {}),
      patient: { reference: `Patient/${patientId}` },
      ...(relationship.length > 0 ? { relationship } : {}),
      ...(name.length > 0 ? { name } : {}),
      ...(telecom.length > 0 ? { telecom } : {}),
      ...(gender ? { gender } : {}),
      ...(birthDate ? { birthDate } : {}),
      ...(address.length > 0 ? { address } : {}),
      ...(start || end ? { period: { ...(start ? { start } : {}), ...(end ? { end } : {}) } } : {}),
    },
  };
}
