import { AppError } from '../../common/errors/app-error.js';
import { isDeepStrictEqual } from 'node:util';
import type { CriteriaMatches } from '../../fhir/criteria-matches.service.js';
import type { FhirService } from '../../fhir/fhir.service.js';
import { HL7_USER } from '../hl7-user.js';
import { Hl7ProcessingError } from '../message/hl7-header.js';
import type { Identifier } from '../mapping/datatypes.js';
import type { RecordClock } from './event-order.js';
import type { V2Message, V2Segment } from '../message/v2-message.js';
import { identifierCriteria } from '../mapping/patient.js';

/** The resources a message wrote (for its audit row) and the patients they belong to. */
export interface Touched {
  entities: string[];
  patientIds: string[];
  /**
   * The types of the records it left as a newer message had set them (see event-order.ts),
   * which its ACK names in a warning.
   */
  kept: string[];
  /** Those it left so by their status rather than by time (see keep). */
  keptByStatus?: string[];
  /**
   * What else its ACK warns of (ERR, W): a line each, naming fields and codes, never values
   * (see keptWarnings).
   */
  warnings?: string[];
}

/** The patient a message is about, as Hl7Processor found or made it from the PID. */
export interface PatientOfMessage {
  sender: string | undefined;
  patientId: string;
  touched: Touched;
  /** The clock of the records the message writes (see recordClock). */
  clock: RecordClock;
}

/** Criteria for one resource by identifier; none without an identifier. */
export function byIdentifier(identifier: Identifier | undefined): string | undefined {
  return identifier ? identifierCriteria([identifier]) : undefined;
}

/** Nothing when several match (412); other errors as they are. */
export function ambiguous(error: unknown): undefined {
  if (error instanceof AppError && error.status === 412) return undefined;
  throw error;
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

/**
 * Replaces the one resource matching `criteria` (under the criteria's lock), or creates it. A
 * feed repeats its lists with every message: what is already stored as sent makes no version.
 * With a `clock`, a message older than one already applied to the match leaves it as it is: an
 * ADT queue replayed out of order would otherwise undo a newer allergy's severity or a
 * diagnosis made final.
 */
export async function upsert(
  fhir: FhirService,
  matches: CriteriaMatches,
  type: string,
  resource: Record<string, unknown>,
  criteria: string | undefined,
  clock?: RecordClock,
): Promise<string> {
  const match = criteria ? await matches.uniqueMatch(HL7_USER, type, criteria) : undefined;
  return writeOver(fhir, type, resource, match, clock);
}

/**
 * Writes the resource over the one found (`match`), unless stored as sent or newer than the
 * message (with a `clock`, see upsert), or creates it.
 */
export async function writeOver(
  fhir: FhirService,
  type: string,
  resource: Record<string, unknown>,
  match: string | undefined,
  clock?: RecordClock,
): Promise<string> {
  if (!match) {
    const { id } = await fhir.create(HL7_USER, type, resource);
    await clock?.(type, id);
    return id;
  }
  if (await clock?.(type, match)) return match;
  const next = { ...resource, id: match };
  // The update would find it unchanged too (the feed's writes keep the stored meta): checked
  // here first because a feed repeats most of what it sends, and a plain read costs less than
  // the update's lock, savepoint and validation.
  const current = (await fhir.read(HL7_USER, type, match)).resource;
  if (!isDeepStrictEqual(next, without(current, 'meta'))) {
    await fhir.update(HL7_USER, type, match, next);
  }
  return match;
}

/**
 * A record a feed keeps in one of the patient's lists (an allergy, a problem, a procedure):
 * written over the one the criteria find, else created; or, when the sender deletes it, that
 * one kept, as every record is, but entered in error, so that it leaves the lists (without the
 * clinical status R4 forbids then: ait-2, con-5). A deletion of one not on file leaves nothing
 * to do, nor does one older than a message already applied to it (with a `clock`, see upsert).
 * Gives the record's id, if there is one.
 */
export async function keepListed(
  fhir: FhirService,
  matches: CriteriaMatches,
  type: 'AllergyIntolerance' | 'Condition' | 'Procedure',
  resource: Record<string, unknown>,
  criteria: string | undefined,
  deletes: boolean,
  clock?: RecordClock,
): Promise<string | undefined> {
  if (!deletes) return upsert(fhir, matches, type, resource, criteria, clock);
  const match = criteria ? await matches.uniqueMatch(HL7_USER, type, criteria) : undefined;
  if (!match) return undefined;
  if (await clock?.(type, match)) return match;
  const current = without((await fhir.read(HL7_USER, type, match)).resource, 'meta');
  const verification = VERIFICATION[type];
  await fhir.update(HL7_USER, type, match, {
    ...(verification
      ? {
          ...without(current, 'clinicalStatus'),
          verificationStatus: { coding: [{ system: verification, code: 'entered-in-error' }] },
        }
      : { ...current, status: 'entered-in-error' }),
    id: match,
  });
  return match;
}

/** Where a record's being in error is its verification status (else it is its status). */
const VERIFICATION: Record<string, string | undefined> = {
  Condition: 'http://terminology.hl7.org/CodeSystem/condition-ver-status',
  AllergyIntolerance: 'http://terminology.hl7.org/CodeSystem/allergyintolerance-verification',
};
