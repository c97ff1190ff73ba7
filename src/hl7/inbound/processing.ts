import { AppError } from '../../common/errors/app-error.js';
import { isDeepStrictEqual } from 'node:util';
import type { CriteriaMatches } from '../../fhir/criteria-matches.service.js';
import type { FhirService } from '../../fhir/fhir.service.js';
import { normalizeString } from '../../fhir/search/normalize.js';
import { HL7_USER } from '../hl7-user.js';
import { Hl7ProcessingError } from '../message/hl7-header.js';
import type { V2Message, V2Segment } from '../message/v2-message.js';
import type { Identifier } from '../mapping/datatypes.js';
import { visitIdentifier } from '../mapping/encounter.js';
import { amendedOrder, type OrderChange } from '../mapping/orders.js';
import { escapeSearch, identifierCriteria, replacedBy } from '../mapping/patient.js';
import type { RecordClock } from './event-order.js';

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
 * The patient's resource with the same first coding: a local code sent without a coding system
 * (an allergen `XYZallergen`) matches the same code without one (`|code`), so that it is not
 * added again with every message. None for a concept that is text only.
 */
export function codeCriteria(
  patientParam: string,
  patientId: string,
  resource: Record<string, unknown>,
  code: { element: string; param: string } = { element: 'code', param: 'code' },
): string | undefined {
  const byCode = codeParam(resource, code);
  return byCode && `${patientParam}=Patient/${patientId}&${byCode}`;
}

/** The search parameter for a resource's first coding (`code=system|code`); none without one. */
export function codeParam(
  resource: Record<string, unknown>,
  code: { element: string; param: string } = { element: 'code', param: 'code' },
): string | undefined {
  const concept = resource[code.element] as { coding?: { system?: string; code?: string }[] };
  const coding = concept.coding?.[0];
  if (!coding?.code) return undefined;
  const token = `${coding.system ? escapeSearch(coding.system) : ''}|${escapeSearch(coding.code)}`;
  return `${code.param}=${encodeURIComponent(token)}`;
}

/** How many of a patient's records that a text's start names are compared (see conceptMatch). */
const SAME_TEXT_CANDIDATES = 100;

/**
 * The one record of `type` in `scope` (the patient's criteria, of a category or a visit too)
 * with the resource's `code`: by its first coding (see codeCriteria), or, for a concept sent as
 * text alone (an allergen `^PENICILLIN`, a diagnosis in DG1-4 only), by that text and no
 * coding. Until 2026-12-06 such a record had no criteria, and every A08 repeating the patient's
 * list filed it again. Search's `:text` matches the start of a text (`PENICILLIN` finds
 * `PENICILLIN G`): the records it finds are compared here, under the lock of its criteria.
 */
export async function conceptMatch(
  fhir: FhirService,
  matches: CriteriaMatches,
  type: string,
  scope: string,
  resource: Record<string, unknown>,
): Promise<string | undefined> {
  const byCode = codeParam(resource);
  if (byCode) return matches.uniqueMatch(HL7_USER, type, `${scope}&${byCode}`);
  return sameTextMatch(fhir, matches, type, scope, resource);
}

/**
 * The criteria that find a record as conceptMatch does, for the writes that take criteria
 * (keepListed): its code's, or, for a concept sent as text alone, the one record that text
 * names (`_id`), under the lock sameTextMatch took. None when there is neither (a new record).
 */
export async function conceptCriteria(
  fhir: FhirService,
  matches: CriteriaMatches,
  type: string,
  scope: string,
  resource: Record<string, unknown>,
): Promise<string | undefined> {
  const byCode = codeParam(resource);
  if (byCode) return `${scope}&${byCode}`;
  const match = await sameTextMatch(fhir, matches, type, scope, resource);
  return match && `${scope}&_id=${match}`;
}

/** The record in `scope` whose concept is the resource's text alone, exactly (conceptMatch). */
async function sameTextMatch(
  fhir: FhirService,
  matches: CriteriaMatches,
  type: string,
  scope: string,
  resource: Record<string, unknown>,
): Promise<string | undefined> {
  const text = textOnly(resource['code']);
  if (text === undefined) return undefined;
  // A text of no letter or digit (`?`, `--`: a placeholder) has nothing :text indexes, so no
  // search by it finds its record: the scope's records are compared, as few as a patient has.
  const criteria =
    normalizeString(text) === ''
      ? scope
      : `${scope}&code:text=${encodeURIComponent(escapeSearch(text))}`;
  await matches.lockCriteria([{ type, criteria }]);
  for (const id of await matches.matchingIds(HL7_USER, type, criteria, SAME_TEXT_CANDIDATES)) {
    const stored = (await fhir.read(HL7_USER, type, id)).resource;
    if (textOnly(stored['code']) === text) return id;
  }
  return undefined;
}

/** A CodeableConcept's text when it has no coding. */
function textOnly(concept: unknown): string | undefined {
  const { coding, text } = (concept ?? {}) as { coding?: unknown[]; text?: string };
  return coding?.length ? undefined : text;
}

/**
 * When a record happened, as `<element>DateTime` or the start of `<element>Period` (a
 * procedure's `performed`, a charge's `occurrence`).
 */
export function startOf(resource: Record<string, unknown>, element: string): string | undefined {
  return (
    (resource[`${element}DateTime`] as string | undefined) ??
    (resource[`${element}Period`] as { start?: string } | undefined)?.start
  );
}

/** A date parameter's criteria for a record of that instant (its range contains it). */
export function atInstant(param: string, instant: string): string {
  const at = encodeURIComponent(instant);
  return `${param}=ge${at}&${param}=le${at}`;
}

/** A resource's code as one string: its first coding, else its text. */
export function codeKey(resource: Record<string, unknown>): string {
  const code = resource['code'] as { coding?: { system?: string; code?: string }[]; text?: string };
  const coding = code?.coding?.[0];
  return coding ? `${coding.system ?? ''}|${coding.code ?? ''}` : `text:${code?.text ?? ''}`;
}

/** The keys that come more than once. */
export function repeated(keys: Iterable<string>): Set<string> {
  const seen = new Set<string>();
  const twice = new Set<string>();
  for (const key of keys) {
    if (seen.has(key)) twice.add(key);
    seen.add(key);
  }
  return twice;
}

/** The codes (codeKey) that more than one of these records has. */
export function repeatedCodes(resources: Record<string, unknown>[]): Set<string> {
  return repeated(resources.map(codeKey));
}

/**
 * The criteria for an observation no number names (an ADT feed's OBX, or a result's before any
 * OBR): the patient's of that code at that time, in that visit or in none. One of neither a
 * time nor a visit (a blood type an A31 carries) is the patient's one of that code and of no
 * time and no visit: until 2026-12-07 it had no criteria, and every A28/A31 repeating it filed
 * it again. Those of a time are never it, nor it one of them: two values of one code at two
 * times stay two.
 */
export function unnumberedObservation(
  observation: Record<string, unknown>,
  patientId: string,
  encounterId: string | undefined,
): string | undefined {
  const byCode = codeCriteria('subject', patientId, observation);
  return byCode && `${byCode}${unnumberedScope(observation, encounterId)}`;
}

/**
 * The time and visit criteria of unnumberedObservation: its time, else (of no visit either)
 * none (`:missing`); its visit, else none.
 */
function unnumberedScope(
  observation: Record<string, unknown>,
  encounterId: string | undefined,
): string {
  const at = observation['effectiveDateTime'] as string | undefined;
  // One of a visit and no time is the visit's of that code, as it was before 2026-12-07.
  const when = at ? `&${atInstant('date', at)}` : encounterId ? '' : '&date:missing=true';
  // One of no visit is never another visit's: those of a time are many, one per stay.
  const visit = encounterId ? `&encounter=Encounter/${encounterId}` : '&encounter:missing=true';
  return `${when}${visit}`;
}

/**
 * unnumberedObservation's criteria, and for an OBX-3 sent as text alone (`^Body weight`) the
 * patient's record of that exact text, time and visit (see conceptCriteria). Until 2026-12-07
 * such an observation had no criteria, and every A08 repeating it filed it again.
 */
export async function unnumberedObservationCriteria(
  fhir: FhirService,
  matches: CriteriaMatches,
  observation: Record<string, unknown>,
  patientId: string,
  encounterId: string | undefined,
): Promise<string | undefined> {
  const byCode = unnumberedObservation(observation, patientId, encounterId);
  if (byCode || codeParam(observation)) return byCode;
  const scope = `subject=Patient/${patientId}${unnumberedScope(observation, encounterId)}`;
  return conceptCriteria(fhir, matches, 'Observation', scope, observation);
}

/**
 * The criteria for a patient's Condition of that code in one category: a visit's diagnosis
 * (DG1) and a problem-list entry (PRB) of the same code are two records, never matched as one.
 */
export function conditionCriteria(
  patientId: string,
  category: 'encounter-diagnosis' | 'problem-list-item',
  resource: Record<string, unknown>,
): string | undefined {
  const byCode = codeCriteria('subject', patientId, resource);
  return byCode && `${byCode}&${conditionCategory(category)}`;
}

export function conditionCategory(category: 'encounter-diagnosis' | 'problem-list-item'): string {
  return `category=${encodeURIComponent(
    `http://terminology.hl7.org/CodeSystem/condition-category|${category}`,
  )}`;
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
 * An order (ServiceRequest, MedicationRequest) written as upsert does, but for one a control
 * message changes (`whole` false: OD, DC, SC...), which keeps what the message does not carry
 * and its status unless `status` gives one (see amendedOrder). A cancel or discontinue of an
 * order not on file (or of no number) is refused (ERR 204), as a referral's is: until
 * 2026-12-07 it was filed as a new order, revoked, and its sender never learnt that the order
 * it meant to take back (placed before the interface went live, or under another number) was
 * not here. So is a change, hold, release or status change (XO, HD, RL, SC...) of one: until
 * 2026-12-07 it was filed as a new order of what the message carried (a hold, a new order on
 * hold), beside the order it meant under another number, or as a copy with every resend.
 */
export async function upsertOrder(
  fhir: FhirService,
  matches: CriteriaMatches,
  type: 'ServiceRequest' | 'MedicationRequest',
  resource: Record<string, unknown>,
  identifiers: readonly Identifier[],
  patientId: string,
  change: OrderChange,
  clock?: RecordClock,
): Promise<string> {
  const match = await patientsOrderOf(fhir, matches, type, identifiers, patientId);
  if (!match && change.withdraws) {
    throw new Hl7ProcessingError(
      '204',
      `A cancel or discontinue (ORC-1 ${change.withdraws}) needs the number (ORC-2, ORC-3) of a known order`,
    );
  }
  if (!match && change.amends) {
    throw new Hl7ProcessingError(
      '204',
      `A change, hold, release or status change (ORC-1 ${change.amends}) needs the number (ORC-2, ORC-3) of a known order`,
    );
  }
  if (!match || change.whole) return writeOver(fhir, type, resource, match, clock);
  const stored = (await fhir.read(HL7_USER, type, match)).resource;
  const kept = without(stored, 'meta', 'id');
  return writeOver(fhir, type, amendedOrder(kept, resource, change.status), match, clock);
}

/**
 * The patient's order of any of its numbers (see patientsNumbered): the placer's (ORC-2) first,
 * then the filler's (ORC-3). Until 2026-12-07 only the first was looked up, and an order the
 * filler placed (its number only) was filed again when the placer's number came with a status
 * change, and its cancel then went to the copy.
 */
export async function patientsOrderOf(
  fhir: FhirService,
  matches: CriteriaMatches,
  type: 'ServiceRequest' | 'MedicationRequest',
  identifiers: readonly Identifier[],
  patientId: string,
): Promise<string | undefined> {
  for (const identifier of identifiers) {
    const match = await patientsNumbered(fhir, matches, type, byIdentifier(identifier)!, patientId);
    if (match) return match;
  }
  return undefined;
}

/** Statuses of an order or dispense taken back, whose number another patient's may then have. */
const WITHDRAWN_ORDER = new Set(['entered-in-error', 'revoked', 'cancelled', 'declined']);

/**
 * The message's patient's order (or dispense) of an order number (ORC-2, ORC-3, or a referral's
 * RF1-6: `field`; `criteria`),
 * theirs or of a patient merged into them (see isPatientsRecord), or undefined for a new one.
 * Another patient's of that number is refused (ERR 205), unless cancelled or entered in error:
 * until 2026-12-07 it was written over and so moved to the message's patient, taking one
 * patient's order, prescription or dispense off their chart. The order number is the only key a
 * control message (a cancel, a hold) has, so two live orders under it could not be told apart;
 * the sender's interface team corrects the patient or the number and sends it again. One
 * cancelled (placed on the wrong patient, say) leaves its number to the right patient's, which
 * the patient's own is then found first (until then every order of it was refused).
 */
export async function patientsNumbered(
  fhir: FhirService,
  matches: CriteriaMatches,
  type: 'ServiceRequest' | 'MedicationRequest' | 'MedicationDispense',
  criteria: string,
  patientId: string,
  field = 'ORC-2/ORC-3',
): Promise<string | undefined> {
  const own = await matches.uniqueMatch(HL7_USER, type, `${criteria}&subject=Patient/${patientId}`);
  if (own) return own;
  // The number's lock, whoever's order it is: two patients' orders sent at once under one
  // number would otherwise both be filed, each under its patient's criteria's lock.
  await matches.lockCriteria([{ type, criteria }]);
  let ours: string | undefined;
  for (const id of await matches.matchingIds(HL7_USER, type, criteria, 20)) {
    const stored = (await fhir.read(HL7_USER, type, id)).resource;
    if (await isPatientsRecord(fhir, stored, patientId)) ours ??= id;
    else if (!WITHDRAWN_ORDER.has(String(stored['status']))) {
      throw new Hl7ProcessingError(
        '205',
        `${field} names another patient's order: correct the patient or the order number`,
      );
    }
  }
  return ours;
}

/**
 * The patient's order (ServiceRequest) of an order number, theirs or of a patient merged into
 * them (see isPatientsRecord), for a record that answers or books it (a result's basedOn, an
 * appointment's): none when only another patient's has it. Until 2026-12-07 any order of the
 * number was taken: a result was tied to another patient's order, and one whose number a
 * cancelled wrong-patient order also had was refused (AE, FHIR 412), the result not filed.
 * Looked up without the number's lock, as knownVisit looks up a visit: nothing here writes it.
 */
export async function patientsOrder(
  fhir: FhirService,
  matches: CriteriaMatches,
  criteria: string,
  patientId: string,
): Promise<string | undefined> {
  const own = await matches
    .findUnique(HL7_USER, 'ServiceRequest', `${criteria}&subject=Patient/${patientId}`)
    .catch(ambiguous);
  if (own) return own;
  for (const id of await matches.matchingIds(HL7_USER, 'ServiceRequest', criteria, 20)) {
    const stored = (await fhir.read(HL7_USER, 'ServiceRequest', id)).resource;
    if (await isPatientsRecord(fhir, stored, patientId)) return id;
  }
  return undefined;
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
 * The Encounter of the message's PV1-19 visit number, when it is known here as this patient's:
 * results, orders and documents are tied to their visit, but make none (the admission feed
 * does). A visit of another patient (see isPatientsRecord) is left out, as an unknown one is: the
 * record is filed under its PID's patient, not tied into someone else's stay, and a lab
 * result is not held back for an operator while the visit number is sorted out.
 */
export async function knownVisit(
  fhir: FhirService,
  matches: CriteriaMatches,
  message: V2Message,
  sender: string | undefined,
  patientId: string,
): Promise<string | undefined> {
  const pv1 = message.first('PV1');
  const criteria = pv1 ? byIdentifier(visitIdentifier(pv1, sender)) : undefined;
  if (!criteria) return undefined;
  // The patient's own visit, found as cheaply as before; only a miss looks further.
  const own = await matches.findUnique(
    HL7_USER,
    'Encounter',
    `${criteria}&subject=Patient/${patientId}`,
  );
  if (own) return own;
  const other = await matches.findUnique(HL7_USER, 'Encounter', criteria);
  if (!other) return undefined;
  const encounter = (await fhir.read(HL7_USER, 'Encounter', other)).resource;
  return (await isPatientsRecord(fhir, encounter, patientId)) ? other : undefined;
}

/** How many merges (A into B, B into C...) a visit's patient is followed through. */
const MAX_MERGE_HOPS = 20;

/**
 * Whether a record (a visit, a report) is the patient's: its subject, or a patient merged into
 * it, through a chain of merges (A40 moves the prior patient's records to the survivor, but
 * leaves there an allergy or a diagnosis the survivor already held, and records merged before
 * merges moved them still name the prior patient). A
 * visit or filler order number names one patient's record; another patient's message naming it
 * (a registration or labelling error, or two number series) must not move it, and what is tied
 * to it, to that patient, nor tie that patient's records into the other's. Moving a visit is
 * A45's.
 */
export async function isPatientsRecord(
  fhir: FhirService,
  record: Record<string, unknown>,
  patientId: string,
): Promise<boolean> {
  const reference = (record['subject'] as { reference?: string } | undefined)?.reference;
  let subject = /^Patient\/([^/]+)$/.exec(reference ?? '')?.[1];
  for (let hop = 0; subject && hop < MAX_MERGE_HOPS; hop++) {
    if (subject === patientId) return true;
    const patient = await fhir.read(HL7_USER, 'Patient', subject).catch(gone);
    subject = patient && replacedBy(patient.resource);
  }
  return false;
}

/** Nothing for a resource that is no longer there (404, 410); other errors as they are. */
function gone(error: unknown): undefined {
  if (error instanceof AppError && (error.status === 404 || error.status === 410)) return undefined;
  throw error;
}

/** The `encounter` element of a record of the message's visit, when the visit is known. */
export async function visitOf(
  fhir: FhirService,
  matches: CriteriaMatches,
  message: V2Message,
  sender: string | undefined,
  patientId: string,
): Promise<{ encounter?: { reference: string } }> {
  const encounterId = await knownVisit(fhir, matches, message, sender, patientId);
  return encounterId ? { encounter: { reference: `Encounter/${encounterId}` } } : {};
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
