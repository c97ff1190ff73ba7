import type { CriteriaMatches } from '../../fhir/criteria-matches.service.js';
import type { FhirService } from '../../fhir/fhir.service.js';
import { databaseProblem } from '../../database/database-unavailable.js';
import type { UnitOfWork } from '../../database/unit-of-work.js';
import { HL7_USER } from '../hl7-user.js';
import { sameIdentifier, type Identifier } from '../mapping/datatypes.js';
import { byIdentifier, without } from './processing.js';

/** How many of a patient's reports and results that one order answers are tied to it at once. */
const MAX_EARLY_RESULTS = 1000;

/** How the warning about early results left untied starts (see untiedWarning). */
export const UNTIED_WARNING = 'The order was filed, but';

/**
 * The patient's reports and results that came before their order (a lab's result filed before
 * the CPOE's order, as interfaces deliver them): their `basedOn`, the order's placer number
 * alone, becomes a reference to the order now placed, so that the order's results are found by
 * it (`DiagnosticReport?based-on=ServiceRequest/...`). Until 2026-12-07 they kept the number
 * alone. Only the patient's own: another patient's result of that number stays as it is (see
 * patientsOrder). Gives those written, and those that could not be (see below).
 *
 * Each is written in a savepoint of its own: one that cannot be written (a record stored before
 * a rule it now breaks) keeps the number alone, and the order is filed all the same, its ACK
 * warning of it (see untiedWarning). Until 2026-12-07 such a failure failed the whole order
 * message (AE): the order was lost for a link the result's number already gives. A database
 * problem (a lost connection, a deadlock) still fails the message, to be retried whole.
 */
export async function tieEarlyResults(
  fhir: FhirService,
  matches: CriteriaMatches,
  unitOfWork: UnitOfWork,
  placer: Identifier | undefined,
  orderId: string,
  patientId: string,
): Promise<{ tied: string[]; untied: string[] }> {
  const number = byIdentifier(placer);
  const tied: string[] = [];
  const untied: string[] = [];
  if (!placer || !number) return { tied, untied };
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
      try {
        await unitOfWork.nested(() => fhir.update(HL7_USER, type, id, { ...stored, basedOn }));
        tied.push(`${type}/${id}`);
      } catch (error) {
        if (databaseProblem(error)) throw error;
        untied.push(type);
      }
    }
  }
  return { tied, untied };
}

/**
 * The ACK's warning of the early results left with the number alone: how many, of which types,
 * never ids or values, for the interface analyst to look into.
 */
export function untiedWarning(untied: readonly string[]): string | undefined {
  if (untied.length === 0) return undefined;
  const types = [...new Set(untied)].join(', ');
  return `${UNTIED_WARNING} ${untied.length} of its results filed before it (${types}) could not be tied to it and keep its placer number (ORC-2) alone`;
}
