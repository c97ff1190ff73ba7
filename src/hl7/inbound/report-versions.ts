import { AppError } from '../../common/errors/app-error.js';
import { FhirService } from '../../fhir/fhir.service.js';
import { HL7_USER } from '../hl7-user.js';
import { isProvisionalReport } from '../mapping/observation.js';
import type { V2Segment } from '../message/v2-message.js';
import { without, writeOver } from './processing.js';
import { isPatientsRecord } from './record-owners.js';

// A report's versions, for ResultMessages: whether the stored one is past a message's, and
// the results a version that carries the whole report no longer has, withdrawn.

/** A stored result as read: its id and its resource. */
type StoredResult = { id: string; resource: Record<string, unknown> };

/** What the warning of results withdrawn by omission says (see withdrawnWarning). */
export const WITHDRAWN_WARNING = 'a report sent whole:';

/**
 * The warning of a final or corrected report (OBR #`index` + 1) that withdrew results by
 * leaving them out: taken as the whole report, a lab's version carrying only the corrected
 * OBX withdraws the others, which until 2026-12-07 went unsaid under an AA. Their OBX-3 codes
 * (none for a text alone), never their values. None when it withdrew nothing.
 */
export function withdrawnWarning(
  obr: V2Segment,
  index: number,
  taken: { resource: Record<string, unknown> }[],
): string | undefined {
  if (taken.length === 0) return undefined;
  const codes = taken.map(({ resource }) => {
    const code = resource['code'] as { coding?: { code?: string }[] } | undefined;
    return code?.coding?.find((coding) => coding.code)?.code ?? '(text only)';
  });
  const which = index > 0 ? ` in OBR #${index + 1}` : '';
  const status = obr.value(25)?.trim().toUpperCase();
  const [results, were] = taken.length === 1 ? ['result', 'was'] : ['results', 'were'];
  return `OBR-25 (result status)${which} is ${status}, ${WITHDRAWN_WARNING} ${taken.length} ${results} an earlier version had and this one leaves out ${were} withdrawn (entered in error), OBX-3 ${codes.join(', ')}; send again any that stand`;
}

/** Nothing for a resource that is no longer there (404, 410); other errors as they are. */
export function gone(error: unknown): undefined {
  if (error instanceof AppError && (error.status === 404 || error.status === 410)) return undefined;
  throw error;
}

/** Whether a report, or every one of its results, is entered in error. */
export async function withdrawn(
  fhir: FhirService,
  report: Record<string, unknown>,
): Promise<boolean> {
  if (report['status'] === 'entered-in-error') return true;
  const results = (report['result'] as { reference?: string }[] | undefined) ?? [];
  if (results.length === 0) return false;
  for (const { reference } of results) {
    const [type, id] = (reference ?? '').split('/');
    if (type !== 'Observation' || !id) return false;
    const result = (await fhir.read(HL7_USER, 'Observation', id)).resource;
    if (result['status'] !== 'entered-in-error') return false;
  }
  return true;
}

/**
 * Whether the stored report is past the version `obr` is, by status alone: verified (final,
 * or corrected since) for a provisional one, corrected for a final one, which v2 follows
 * only by another correction. Not one the lab withdrew as another patient's (every result
 * entered in error, the wrong patient's): the report sent again under the right patient
 * (`patientId`) starts over, and until 2026-12-07 its preliminary version was taken for a
 * replay, the patient's result unfiled. One the lab withdrew from this patient stays past:
 * its earlier version replayed brought the withdrawn value back (a haemolysed potassium).
 */
export async function overtaken(
  fhir: FhirService,
  obr: V2Segment,
  reportId: string,
  patientId: string,
): Promise<boolean> {
  const provisional = isProvisionalReport(obr);
  if (!provisional && obr.value(25)?.trim().toUpperCase() !== 'F') return false;
  const report = (await fhir.read(HL7_USER, 'DiagnosticReport', reportId)).resource;
  const past = ['corrected', 'amended', 'appended', ...(provisional ? ['final'] : [])];
  if (!past.includes(report['status'] as string)) return false;
  return !(await withdrawn(fhir, report)) || (await isPatientsRecord(fhir, report, patientId));
}

/** The results of the stored report that this version does not carry, as they are. */
export async function dropped(
  fhir: FhirService,
  reportId: string,
  carried: { reference: string }[],
): Promise<StoredResult[]> {
  const report = (await fhir.read(HL7_USER, 'DiagnosticReport', reportId)).resource;
  const kept = new Set(carried.map(({ reference }) => reference));
  const found: StoredResult[] = [];
  for (const { reference } of (report['result'] as { reference?: string }[] | undefined) ?? []) {
    const id = /^Observation\/([^/]+)$/.exec(reference ?? '')?.[1];
    if (!id || kept.has(`Observation/${id}`)) continue;
    const observation = await fhir.read(HL7_USER, 'Observation', id).catch(gone);
    if (observation) found.push({ id, resource: observation.resource });
  }
  return found;
}

/**
 * Marks results entered in error (FHIR's "withdrawn following previous final release", as
 * the IG maps OBX-11 D and W), kept with their values for the record. Gives those it
 * changed, as they were.
 */
export async function withdraw(
  fhir: FhirService,
  results: StoredResult[],
): Promise<StoredResult[]> {
  const taken: StoredResult[] = [];
  for (const { id, resource } of results) {
    if (resource['status'] === 'entered-in-error') continue;
    const body = { ...without(resource, 'meta', 'id'), status: 'entered-in-error' };
    await writeOver(fhir, 'Observation', body, id);
    taken.push({ id, resource });
  }
  return taken;
}
