import type { CriteriaMatches } from '../../fhir/criteria-matches.service.js';
import type { FhirService } from '../../fhir/fhir.service.js';
import { HL7_USER } from '../hl7-user.js';
import { specimenFromObr, specimenFromSpm } from '../mapping/specimen.js';
import type { V2Segment } from '../message/v2-message.js';
import { byIdentifier, upsert, writeOver, type Touched } from './processing.js';
import { isPatientsRecord } from './record-owners.js';
import { gone } from './report-versions.js';

/**
 * The Specimen of an SPM, known again by its filler's (else placer's) id for the patient, so
 * that a later result or order on the same specimen updates it. One tube is one patient's: when
 * another patient's live Specimen has that id too (a mislabel, a number reused), the ACK says so
 * (`touched`'s warnings; see specimenCollision), where until 2026-12-07 it was filed in silence.
 * Each patient's stays apart, and the message is filed: a refusal (AE) would stop a lab's
 * results queue on a result, and the shared samples send one id for two patients.
 */
export async function spmSpecimen(
  fhir: FhirService,
  matches: CriteriaMatches,
  spm: V2Segment,
  patientId: string,
  sender: string | undefined,
  touched?: Touched,
): Promise<string> {
  const { identifier, resource } = specimenFromSpm(spm, patientId, sender);
  const byId = byIdentifier(identifier);
  const id = await upsert(
    fhir,
    matches,
    'Specimen',
    resource,
    byId && `${byId}&subject=Patient/${patientId}`,
  );
  if (touched && byId && (await specimenCollision(fhir, matches, byId, id, patientId))) {
    const warnings = (touched.warnings ??= []);
    if (!warnings.includes(SPECIMEN_COLLISION)) warnings.push(SPECIMEN_COLLISION);
  }
  return id;
}

const SPECIMEN_COLLISION =
  "SPM-2 names another patient's specimen too: filed as this patient's; correct the patient or the specimen id";

/** Whether a live Specimen of that id (`criteria`) is another patient's (see spmSpecimen). */
async function specimenCollision(
  fhir: FhirService,
  matches: CriteriaMatches,
  criteria: string,
  own: string,
  patientId: string,
): Promise<boolean> {
  for (const id of await matches.matchingIds(HL7_USER, 'Specimen', criteria, 20)) {
    if (id === own) continue;
    const stored = (await fhir.read(HL7_USER, 'Specimen', id)).resource;
    if (stored['status'] === 'entered-in-error') continue;
    if (!(await isPatientsRecord(fhir, stored, patientId))) return true;
  }
  return false;
}

/** A stored record that may refer to an OBR-15's Specimen: a report, or the order it answers. */
export type SpecimenHolder = { type: 'DiagnosticReport' | 'ServiceRequest'; id: string };

/**
 * The Specimen of an OBR-15 (see specimenFromObr), none when it names none. It has no id of its
 * own: the one of that type the first record on file of `holders` (the report, else the order
 * it answers) refers to is written over, so that a corrected report, a resent order or the
 * order's result adds none; else it is created.
 */
export async function obrSpecimen(
  fhir: FhirService,
  obr: V2Segment,
  patientId: string,
  holders: readonly (SpecimenHolder | undefined)[],
): Promise<string | undefined> {
  const resource = specimenFromObr(obr, patientId);
  if (!resource) return undefined;
  let held: string | undefined;
  for (const holder of holders) {
    held ??= await heldSpecimen(fhir, holder, typeKey(resource));
  }
  return writeOver(fhir, 'Specimen', resource, held);
}

/** A Specimen's type as one string: its first code, else its text. */
function typeKey(specimen: Record<string, unknown>): string {
  const type = specimen['type'] as { coding?: { code?: string }[]; text?: string } | undefined;
  return type?.coding?.[0]?.code ?? `text:${type?.text ?? ''}`;
}

/**
 * The one Specimen of no identifier (an OBR-15's) a stored report or order refers to, when it
 * is of that type (a result on serum is not the blood the order named).
 */
async function heldSpecimen(
  fhir: FhirService,
  holder: SpecimenHolder | undefined,
  type: string,
): Promise<string | undefined> {
  if (!holder) return undefined;
  const stored = (await fhir.read(HL7_USER, holder.type, holder.id)).resource;
  const references = (stored['specimen'] as { reference?: string }[] | undefined) ?? [];
  const id =
    references.length === 1 && /^Specimen\/([^/]+)$/.exec(references[0]!.reference ?? '')?.[1];
  if (!id) return undefined;
  const specimen = await fhir.read(HL7_USER, 'Specimen', id).catch(gone);
  return specimen && !specimen.resource['identifier'] && typeKey(specimen.resource) === type
    ? id
    : undefined;
}
