import { Injectable } from '@nestjs/common';
import { isDeepStrictEqual } from 'node:util';
import { CriteriaMatches } from '../../fhir/criteria-matches.service.js';
import { ResourceReferrers } from '../../fhir/resource-referrers.service.js';
import { FhirService } from '../../fhir/fhir.service.js';
import { HL7_USER } from '../hl7-user.js';
import { identifierOf, sameIdentifier, type Identifier } from '../mapping/datatypes.js';
import { visitIdentifier } from '../mapping/encounter.js';
import { Hl7ProcessingError } from '../message/hl7-header.js';
import type { V2Message } from '../message/v2-message.js';
import { moveRecords, recordsReferring } from './record-moves.js';
import {
  byIdentifier,
  withFollowing,
  without,
  type PatientOfMessage,
  type Touched,
} from './processing.js';

/** ADT^A45 (a visit moved to another patient), for Hl7Processor, in its transaction. */
@Injectable()
export class VisitMoves {
  constructor(
    private readonly fhir: FhirService,
    private readonly referrers: ResourceReferrers,
    private readonly matches: CriteriaMatches,
  ) {}

  /**
   * For each MRG (with the PV1 after it), the visit its prior visit number MRG-5 names becomes
   * the PID patient's, with what was recorded in it: every record that refers to the Encounter
   * (results, reports, orders, diagnoses, procedures, charges, documents) is moved from the
   * patient the visit had to this one; records that do not name the visit (a specimen, the
   * allergy list) stay. The visit takes PV1-19 as its number when that changed. A visit not
   * known here has nothing to move: later messages about it name its patient.
   */
  async process(
    message: V2Message,
    { sender, patientId, touched }: PatientOfMessage,
  ): Promise<Touched> {
    const to = `Patient/${patientId}`;
    const moves = withFollowing(message, 'MRG', ['PV1']);
    if (moves.length === 0) {
      throw new Hl7ProcessingError('100', 'A visit move needs an MRG segment (MRG-5, the visit)');
    }
    for (const [mrg, following] of moves) {
      const priorVisit = mrg.repetitions(5)[0];
      const prior = priorVisit && identifierOf(priorVisit, sender);
      if (!prior) {
        throw new Hl7ProcessingError('101', 'MRG-5 (the number of the visit to move) is required');
      }
      const encounterId = await this.matches.uniqueMatch(
        HL7_USER,
        'Encounter',
        byIdentifier(prior)!,
      );
      if (!encounterId) continue;
      const stored = (await this.fhir.read(HL7_USER, 'Encounter', encounterId)).resource;
      const current = without(stored, 'meta');
      const from = (current['subject'] as { reference?: string } | undefined)?.reference;
      const pv1 = following[0];
      const number = pv1 && visitIdentifier(pv1, sender);
      const identifiers = (current['identifier'] as Identifier[] | undefined) ?? [];
      const renumbered =
        number && !identifiers.some((identifier) => sameIdentifier(identifier, number))
          ? [...identifiers.filter((identifier) => !sameIdentifier(identifier, prior)), number]
          : identifiers;
      const next = {
        ...current,
        ...(renumbered.length > 0 ? { identifier: renumbered } : {}),
        subject: { reference: to },
      };
      if (!isDeepStrictEqual(next, current)) {
        await this.fhir.update(HL7_USER, 'Encounter', encounterId, next);
        touched.entities.push(`Encounter/${encounterId}`);
      }
      if (!from || from === to) continue;
      if (from.startsWith('Patient/')) touched.patientIds.push(from.slice('Patient/'.length));
      const records = await recordsReferring(
        this.fhir,
        this.referrers,
        'Encounter',
        encounterId,
        'The visit',
      );
      await moveRecords(this.fhir, records, { from, to }, touched);
    }
    return touched;
  }
}
