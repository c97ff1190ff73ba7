import type { V2Segment } from '../message/v2-message.js';
import type { Identifier } from './datatypes.js';
import { orderIdentifiers } from './orders.js';

/**
 * The filler order number (ORC-3) CDC's immunization guide (release 1.5) has every sender give
 * a dose that was not given (a refusal, a contraindication): it names no dose.
 */
const NOT_GIVEN = '9999';

const fillerOf = (identifier: Identifier): boolean =>
  identifier.type?.coding.some((coding) => coding.code === 'FILL') ?? false;

/**
 * A dose's own identifiers: the order numbers of its ORC (ORC-2, ORC-3), but for a filler
 * number of 9999, which every refusal of every patient carries. Kept as the dose's identity
 * until 2026-12-07, one patient's refusal was written over the next one's.
 */
export function doseIdentifiers(orc: V2Segment | undefined, senderSystem?: string): Identifier[] {
  return orderIdentifiers(orc, senderSystem).filter(
    (identifier) => !(fillerOf(identifier) && identifier.value === NOT_GIVEN),
  );
}

/**
 * The identifier a dose is known by: the filler order number (ORC-3), which CDC's guide makes
 * the sender's unique id of the dose, else the placer's (ORC-2), whose one order may have
 * several doses.
 */
export function fillerFirst(identifiers: Identifier[]): Identifier | undefined {
  return identifiers.find(fillerOf) ?? identifiers[0];
}
