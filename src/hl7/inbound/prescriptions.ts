import type { CriteriaMatches } from '../../fhir/criteria-matches.service.js';
import type { FhirService } from '../../fhir/fhir.service.js';
import { annotationsOf, type Identifier } from '../mapping/datatypes.js';
import { orderChangeOf } from '../mapping/orders.js';
import type { V2Segment } from '../message/v2-message.js';
import { orderAnswers, type OrderAnswer } from './order-answers.js';
import { patientsOrderOf, unnumberedPrescription, upsertOrder } from './order-numbers.js';
import type { PatientOfMessage } from './processing.js';

/** A pharmacy order as a message gives it: an ORM's or OMP's RXO, an RDE's RXE. */
export interface PrescriptionOfMessage {
  orc: V2Segment | undefined;
  /** Its MedicationRequest, as the RXO or RXE maps to it. */
  prescription: Record<string, unknown>;
  identifiers: readonly Identifier[];
  /** The NTE right after the RXO or RXE: its notes. */
  notes: readonly V2Segment[];
  /** The OBX after it (see orderAnswers). */
  answers: readonly OrderAnswer[];
  encounter: { encounter?: { reference: string } };
}

/**
 * Files a pharmacy order (ORM, OMP, RDE) as its MedicationRequest, with its notes and its
 * answers as Observations in its supportingInformation, and returns its id. The order on file
 * is looked up once, for its answers and its upsert: by its numbers, else, for a new order of
 * none, by what it says (see unnumberedPrescription).
 */
export async function filePrescription(
  fhir: FhirService,
  matches: CriteriaMatches,
  { orc, prescription, identifiers, notes, answers, encounter }: PrescriptionOfMessage,
  { sender, patientId, touched, clock }: PatientOfMessage,
): Promise<string> {
  const note = annotationsOf(notes);
  const change = orderChangeOf(orc, 'MedicationRequest');
  let lookup: Promise<string | undefined> | undefined;
  const stored = () =>
    (lookup ??=
      identifiers.length === 0 && change.whole
        ? unnumberedPrescription(fhir, matches, { ...prescription, ...encounter }, patientId)
        : patientsOrderOf(fhir, matches, 'MedicationRequest', identifiers, patientId));
  const supportingInformation = await orderAnswers(fhir, 'MedicationRequest', answers, {
    obr: undefined,
    storedOrder: stored,
    sender,
    patientId,
    encounter,
    clock,
  });
  touched.entities.push(...supportingInformation.map(({ reference }) => reference));
  const id = await upsertOrder(
    fhir,
    matches,
    'MedicationRequest',
    {
      ...prescription,
      ...encounter,
      ...(note.length > 0 ? { note } : {}),
      ...(supportingInformation.length > 0 ? { supportingInformation } : {}),
    },
    identifiers,
    patientId,
    change,
    clock,
    stored,
  );
  touched.entities.push(`MedicationRequest/${id}`);
  return id;
}
