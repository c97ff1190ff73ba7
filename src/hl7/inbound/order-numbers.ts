import { isDeepStrictEqual } from 'node:util';
import type { CriteriaMatches } from '../../fhir/criteria-matches.service.js';
import type { FhirService } from '../../fhir/fhir.service.js';
import { HL7_USER } from '../hl7-user.js';
import { Hl7ProcessingError } from '../message/hl7-header.js';
import type { Identifier } from '../mapping/datatypes.js';
import type { RecordClock } from './event-order.js';
import { amendedOrder, type OrderChange } from '../mapping/orders.js';
import { isPatientsRecord } from './record-owners.js';
import { ambiguous, byIdentifier, without, writeOver } from './processing.js';
import { atInstant, codeParam } from './record-criteria.js';

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
 * `onFile`: the patient's order of these numbers, when the caller has looked it up already.
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
  onFile: () => Promise<string | undefined> = () =>
    patientsOrderOf(fhir, matches, type, identifiers, patientId),
): Promise<string> {
  // One of no number is known by what it says only when it is the whole order (a new one, NW):
  // a cancel or a change of no number is refused below, as it was. A ServiceRequest's is the
  // caller's to find (see unnumberedOrder), as its answers and specimens are found by it first.
  const match =
    identifiers.length === 0 && change.whole && type === 'MedicationRequest'
      ? await unnumberedPrescription(fhir, matches, resource, patientId)
      : await onFile();
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
 * The patient's prescription of no number (no ORC-2 nor ORC-3: a feed that numbers none) that
 * the message's is: of the same drug, written at the same time (ORC-9 of a new order) or both
 * at none, and of no number either. Until 2026-12-07 each was filed as new, and the same order
 * sent again (a replay, under new control ids) listed the drug once more each time, which a
 * pharmacist reads as two orders. An order of no number of another drug, or written at another
 * time, is another. A ServiceRequest's is unnumberedOrder's.
 */
export async function unnumberedPrescription(
  fhir: FhirService,
  matches: CriteriaMatches,
  resource: Record<string, unknown>,
  patientId: string,
): Promise<string | undefined> {
  const authored = resource['authoredOn'] as string | undefined;
  const when = authored ? atInstant('authoredon', authored) : 'authoredon:missing=true';
  const scope = `subject=Patient/${patientId}&identifier:missing=true&${when}`;
  if (resource['medicationCodeableConcept']) {
    const drug = codeParam(resource, { element: 'medicationCodeableConcept', param: 'code' });
    if (!drug) return undefined;
    const criteria = `${scope}&${drug}`;
    return matches.uniqueMatch(HL7_USER, 'MedicationRequest', criteria).catch(ambiguous);
  }
  // A compound's drug is its contained Medication's (see medicationOf), which search does not
  // index: the patient's unnumbered prescriptions of no code written then are compared.
  const criteria = `${scope}&code:missing=true`;
  await matches.lockCriteria([{ type: 'MedicationRequest', criteria }]);
  const own = compoundOf(resource);
  const found: string[] = [];
  for (const id of await matches.matchingIds(
    HL7_USER,
    'MedicationRequest',
    criteria,
    UNNUMBERED_CANDIDATES,
  )) {
    const stored = (await fhir.read(HL7_USER, 'MedicationRequest', id)).resource;
    if (isDeepStrictEqual(compoundOf(stored), own)) found.push(id);
  }
  return found.length === 1 ? found[0] : undefined;
}

/** What a compound's contained Medication gives: its code and its ingredients' items. */
function compoundOf(resource: Record<string, unknown>): unknown {
  const [medication] = (resource['contained'] ?? []) as Record<string, unknown>[];
  const ingredients = (medication?.['ingredient'] ?? []) as Record<string, unknown>[];
  return [medication?.['code'], ingredients.map((one) => one['itemCodeableConcept'])];
}

/** How many of a patient's orders of no number and of one code are compared (unnumberedOrder). */
const UNNUMBERED_CANDIDATES = 100;

/** What an order says of itself, to compare: not its status, nor the records it refers to. */
const OWN_CONTENT = ['meta', 'id', 'status', 'supportingInfo', 'specimen'];

/**
 * The patient's order of no number (ServiceRequest; no ORC-2, ORC-3, OBR-2 nor OBR-3: a CPOE
 * that numbers none) that the message's new order (`request`, NW or no ORC) is: one of no
 * number either that says all it says, the same code, times, requester, notes, visit, and
 * not already taken by an earlier order of this message (`taken`). Until 2026-12-07 each was
 * filed as new, as merging two orders was judged the worse risk, and an engine's replay of a
 * CT order (the same message under new control ids, MSH-7 and MSH-10 being all that differ)
 * put a second CT on the worklist. Nothing but those two tells such a replay from a new order
 * sent alike, so an order that differs in any element mapped (another time, another timing)
 * is another, and two alike in one message (two glucoses to draw) stay two, each finding one
 * of its own kind when the message comes again. The status is not compared: a replayed NW
 * replaces the order, as one of a number does.
 */
export async function unnumberedOrder(
  fhir: FhirService,
  matches: CriteriaMatches,
  request: Record<string, unknown>,
  patientId: string,
  taken: ReadonlySet<string>,
): Promise<string | undefined> {
  const code = request['code'] ? codeParam(request) : undefined;
  const criteria = `subject=Patient/${patientId}&identifier:missing=true${code ? `&${code}` : ''}`;
  // Two replays at once would otherwise each find none and both file the order.
  await matches.lockCriteria([{ type: 'ServiceRequest', criteria }]);
  const own = without(request, ...OWN_CONTENT);
  for (const id of await matches.matchingIds(
    HL7_USER,
    'ServiceRequest',
    criteria,
    UNNUMBERED_CANDIDATES,
  )) {
    if (taken.has(id)) continue;
    const stored = (await fhir.read(HL7_USER, 'ServiceRequest', id)).resource;
    if (isDeepStrictEqual(without(stored, ...OWN_CONTENT), own)) return id;
  }
  return undefined;
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
 * `candidates`: the orders of the number, when the caller has searched them already.
 */
export async function patientsOrder(
  fhir: FhirService,
  matches: CriteriaMatches,
  criteria: string,
  patientId: string,
  candidates?: string[],
): Promise<string | undefined> {
  const own = await matches
    .findUnique(HL7_USER, 'ServiceRequest', `${criteria}&subject=Patient/${patientId}`)
    .catch(ambiguous);
  if (own) return own;
  for (const id of candidates ?? (await orderCandidates(matches, criteria))) {
    const stored = (await fhir.read(HL7_USER, 'ServiceRequest', id)).resource;
    if (await isPatientsRecord(fhir, stored, patientId)) return id;
  }
  return undefined;
}

/**
 * patientsOrder for a number that seldom names an order here: the filler's own (a result's
 * OBR-3 when it has no placer number), which an order has only when the filler placed it. The
 * orders of the number, whoever's, are searched first: none, the usual answer, in one statement
 * where patientsOrder's search of the patient's own first took two.
 */
export async function patientsOrderIfAny(
  fhir: FhirService,
  matches: CriteriaMatches,
  criteria: string,
  patientId: string,
): Promise<string | undefined> {
  const candidates = await orderCandidates(matches, criteria);
  if (candidates.length === 0) return undefined;
  return patientsOrder(fhir, matches, criteria, patientId, candidates);
}

/** The orders of a number, whoever's: at most 20, to find the patient's among. */
function orderCandidates(matches: CriteriaMatches, criteria: string): Promise<string[]> {
  return matches.matchingIds(HL7_USER, 'ServiceRequest', criteria, 20);
}
