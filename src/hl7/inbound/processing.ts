import { Hl7ProcessingError } from '../message/hl7-header.js';
import type { V2Message, V2Segment } from '../message/v2-message.js';
import type { Identifier } from '../mapping/datatypes.js';
import { identifierCriteria } from '../mapping/patient.js';

/** The resources a message wrote (for its audit row) and the patients they belong to. */
export interface Touched {
  entities: string[];
  patientIds: string[];
}

/** The patient a message is about, as Hl7Processor found or made it from the PID. */
export interface PatientOfMessage {
  sender: string | undefined;
  patientId: string;
  touched: Touched;
}

/** Criteria for one resource by identifier; none without an identifier. */
export function byIdentifier(identifier: Identifier | undefined): string | undefined {
  return identifier ? identifierCriteria([identifier]) : undefined;
}

/** A copy without some elements (meta is the server's, rewritten on every version). */
export function without(
  resource: Record<string, unknown>,
  ...elements: string[]
): Record<string, unknown> {
  const copy = { ...resource };
  for (const element of elements) delete copy[element];
  return copy;
}

/** The message's first segment of that name; an error (ERR 100) when it has none. */
export function required(message: V2Message, name: string): V2Segment {
  const segment = message.first(name);
  if (!segment) {
    throw new Hl7ProcessingError('100', `The message needs a ${name} segment`);
  }
  return segment;
}
