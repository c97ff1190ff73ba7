import type { CriteriaMatches } from '../../fhir/criteria-matches.service.js';
import type { FhirService } from '../../fhir/fhir.service.js';
import { HL7_USER } from '../hl7-user.js';
import { sameIdentifier, type Identifier } from '../mapping/datatypes.js';
import { byIdentifier, without } from './processing.js';

/** How many of a patient's reports and results that one order answers are tied to it at once. */
const MAX_EARLY_RESULTS = 1000;

/**
 * The patient's reports and results that came before their order (a lab's result filed before
 * the CPOE's order, as interfaces deliver them): their `basedOn`, the order's placer number
 * alone, becomes a reference to the order now placed, so that the order's results are found by
 * it (`DiagnosticReport?based-on=ServiceRequest/...`). Until 2026-12-07 they kept the number
 * alone. Only the patient's own: another patient's result of that number stays as it is (see
 * patientsOrder). Gives those written.
 */
export async function tieEarlyResults(
  fhir: FhirService,
  matches: CriteriaMatches,
  placer: Identifier | undefined,
  orderId: string,
  patientId: string,
): Promise<string[]> {
  const number = byIdentifier(placer);
  if (!placer || !number) return [];
  const tied: string[] = [];
  for (const type of ['DiagnosticReport', 'Observation']) {
    const criteria = `subject=Patient/${patientId}&based-on:${number}`;
    for (const id of await matches.matchingIds(HL7_USER, type, criteria, MAX_EARLY_RESULTS)) {
      const stored = without((await fhir.read(HL7_USER, type, id)).resource, 'meta');
      const basedOn = (stored['basedOn'] as { reference?: string; identifier?: Identifier }[]).map(
        (reference) =>
          !reference.reference &&
          reference.identifier &&
          sameIdentifier(reference.identifier, placer)
            ? { reference: `ServiceRequest/${orderId}` }
            : reference,
      );
      await fhir.update(HL7_USER, type, id, { ...stored, basedOn });
      tied.push(`${type}/${id}`);
    }
  }
  return tied;
}
