import { Injectable } from '@nestjs/common';
import { CriteriaMatches } from '../../fhir/criteria-matches.service.js';
import { FhirService } from '../../fhir/fhir.service.js';
import { HL7_USER } from '../hl7-user.js';
import { sameIdentifier } from '../mapping/datatypes.js';
import { identifierCriteria, patientFromSegments } from '../mapping/patient.js';
import { Hl7ProcessingError } from '../message/hl7-header.js';
import type { V2Message } from '../message/v2-message.js';
import { patientNamed, senderSystem } from './message-patients.js';
import { without, type Touched } from './processing.js';

interface PatientLink {
  other?: { reference?: unknown };
  type?: unknown;
}

/** The link types a merge writes (A40, FHIR's $merge): the pair an unlink may not take apart. */
const MERGE_LINKS: ReadonlySet<unknown> = new Set(['replaced-by', 'replaces']);

const MERGED =
  'The two patients were merged (A40): an unlink (A37) does not undo a merge, which moved ' +
  "the prior patient's records and identifiers; correct it on the survivor";

/**
 * A Patient's links without its `seealso` ones to `otherId`: what an unlink (A37) leaves of
 * them. An A24 links two records of one person without merging them, which is FHIR's `seealso`
 * ("in use and valid", another record of the same person); `refer` and the merge's pair are
 * other relations. Throws (AE) when a link to the other is a merge's: undone by an unlink, the
 * retired record would answer again while its records and identifiers stay with the survivor.
 */
export function unlinked(links: readonly PatientLink[], otherId: string): PatientLink[] {
  const toOther = (link: PatientLink) => link.other?.reference === `Patient/${otherId}`;
  if (links.some((link) => toOther(link) && MERGE_LINKS.has(link.type))) {
    throw new Hl7ProcessingError('207', MERGED);
  }
  return links.filter((link) => !(toOther(link) && link.type === 'seealso'));
}

/** Unlinking two patients (ADT^A37), for Hl7Processor. */
@Injectable()
export class PatientLinks {
  constructor(
    private readonly fhir: FhirService,
    private readonly matches: CriteriaMatches,
  ) {}

  /**
   * ADT^A37: the two patients of its PID segments are no longer linked as one person's records
   * (the link an A24 or a registrar made): their `seealso` links to each other are removed, and
   * neither is retired or changed otherwise. A patient not known here, or a link not there, is
   * already as the sender has it (AA, nothing written, so a resend changes nothing). Two PIDs
   * naming one patient here are a merge's doing (the survivor answers to the prior numbers),
   * and so is a `replaced-by` pair between them: refused (AE), as an edit does not undo a merge.
   */
  async unlink(message: V2Message): Promise<Touched> {
    const touched: Touched = { entities: [], patientIds: [], kept: [] };
    const pids = message.all('PID');
    if (pids.length !== 2) {
      throw new Hl7ProcessingError('100', 'An unlink (A37) needs the PID segments of two patients');
    }
    const sender = senderSystem(message);
    const sent = pids.map((pid) => patientFromSegments(pid, sender, undefined).identifiers);
    const ids: (string | undefined)[] = [];
    for (const [i, identifiers] of sent.entries()) {
      // Each patient by the numbers the other PID does not carry: two records of one person
      // share an SSN, which names both of them (AE 205 had it been searched for).
      const own = identifiers.filter(
        (identifier) => !sent[1 - i]!.some((other) => sameIdentifier(other, identifier)),
      );
      if (!identifierCriteria(own)) {
        throw new Hl7ProcessingError(
          '101',
          'PID-3 holds no identifier with an assigning authority that the other PID does not hold',
        );
      }
      ids.push(await patientNamed(this.fhir, this.matches, own, 'PID-3'));
    }
    const [first, second] = ids;
    if (!first || !second) return touched;
    if (first === second) throw new Hl7ProcessingError('207', MERGED);
    const patients = [
      (await this.fhir.read(HL7_USER, 'Patient', first)).resource,
      (await this.fhir.read(HL7_USER, 'Patient', second)).resource,
    ] as const;
    // Both checked before either is written: a merge between them refuses the whole message.
    const kept = [
      unlinked((patients[0]['link'] as PatientLink[] | undefined) ?? [], second),
      unlinked((patients[1]['link'] as PatientLink[] | undefined) ?? [], first),
    ];
    for (const [i, patient] of patients.entries()) {
      const links = (patient['link'] as PatientLink[] | undefined) ?? [];
      if (kept[i]!.length === links.length) continue;
      const id = String(patient['id']);
      await this.fhir.update(HL7_USER, 'Patient', id, {
        ...without(patient, 'meta', 'link'),
        ...(kept[i]!.length > 0 ? { link: kept[i] } : {}),
      });
      touched.entities.push(`Patient/${id}`);
      touched.patientIds.push(id);
    }
    return touched;
  }
}
