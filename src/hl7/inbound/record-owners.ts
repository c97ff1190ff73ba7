import { AppError } from '../../common/errors/app-error.js';
import type { CriteriaMatches } from '../../fhir/criteria-matches.service.js';
import type { FhirService } from '../../fhir/fhir.service.js';
import { HL7_USER } from '../hl7-user.js';
import { visitIdentifier } from '../mapping/encounter.js';
import type { V2Message } from '../message/v2-message.js';
import { replacedBy } from '../mapping/patient.js';
import { byIdentifier } from './processing.js';

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
