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

/**
 * Each segment of that name with the segments right after it that belong to it, as a v2
 * group has them (an IAM's IAR reactions and NTE notes).
 */
export function withFollowing(
  message: V2Message,
  name: string,
  members: readonly string[],
): [V2Segment, V2Segment[]][] {
  const groups: [V2Segment, V2Segment[]][] = [];
  let open: V2Segment[] | undefined;
  for (const segment of message.segments()) {
    if (segment.name === name) {
      open = [];
      groups.push([segment, open]);
    } else if (open && members.includes(segment.name)) open.push(segment);
    else open = undefined;
  }
  return groups;
}
