import { Injectable } from '@nestjs/common';
import { CriteriaMatches } from '../../fhir/criteria-matches.service.js';
import { FhirService } from '../../fhir/fhir.service.js';
import { HL7_USER } from '../hl7-user.js';
import { chargeFromFt1 } from '../mapping/charge.js';
import type { Identifier } from '../mapping/datatypes.js';
import { Hl7ProcessingError, Hl7RejectError } from '../message/hl7-header.js';
import type { V2Message, V2Segment } from '../message/v2-message.js';
import type { SegmentContext } from './patient-segments.js';
import { byIdentifier, withFollowing, writeOver, type Touched } from './processing.js';
import { atInstant, codeCriteria, startOf } from './record-criteria.js';

/** Detailed financial transactions: posted (P03) and posted with their context (P11). */
export const DFT_EVENTS: ReadonlySet<string> = new Set(['P03', 'P11']);

/** FT1-6 transaction types (table 0017) that are charges; one not given is taken as a charge. */
const CHARGE_TYPES: ReadonlySet<string> = new Set(['', 'CG']);

/** The charges (FT1) of DFT messages, for Hl7Processor, in its transaction. */
@Injectable()
export class ChargeMessages {
  constructor(
    private readonly fhir: FhirService,
    private readonly matches: CriteriaMatches,
  ) {}

  /**
   * Each FT1 as a ChargeItem of the patient and the known visit, known by its transaction id
   * (FT1-2), else by its code, date and visit, so that a resent charge replaces itself; its
   * services are the Procedures of the PR1 segments after it (`recorded`: the Procedure
   * PatientSegments wrote for each PR1). A credit, payment or adjustment is an error for
   * the whole message (AR) rather than a charge dropped or filed as one; a second charge that
   * could not be told from one before it in the same message is one too (AE). A message older
   * than one already applied to a charge leaves it as it is.
   */
  async process(
    message: V2Message,
    { sender, patientId, encounterId, clock }: SegmentContext,
    recorded: ReadonlyMap<V2Segment, string>,
    touched: Touched,
  ): Promise<void> {
    const written = new Set<string>();
    for (const [ft1, following] of withFollowing(message, 'FT1', ['NTE', 'PR1', 'PRT', 'ROL'])) {
      const type = ft1.value(6)?.toUpperCase() ?? '';
      if (!CHARGE_TYPES.has(type)) {
        // Refused (AR), not an error to process again: it never will be a charge.
        throw new Hl7RejectError(
          '103',
          'FT1-6 is not a charge (CG): credits, payments and adjustments are not kept here',
        );
      }
      const notes = following.filter((segment) => segment.name === 'NTE');
      const charge = chargeFromFt1(ft1, notes, patientId, encounterId, sender);
      if (!charge) {
        throw new Hl7ProcessingError('101', 'FT1-7 (the transaction code) is required');
      }
      const service = following
        .map((segment) => recorded.get(segment))
        .filter((reference) => reference !== undefined)
        .map((reference) => ({ reference }));
      const resource = service.length > 0 ? { ...charge.resource, service } : charge.resource;
      const criteria = this.criteria(charge.identifier, resource, patientId, encounterId);
      const match = criteria
        ? await this.matches.uniqueMatch(HL7_USER, 'ChargeItem', criteria)
        : undefined;
      if (match && written.has(match)) {
        throw new Hl7ProcessingError(
          '205',
          'Two charges of this message have the same transaction id (FT1-2), or neither has one and they have the same code, date and visit: number them in FT1-2',
        );
      }
      const id = await writeOver(this.fhir, 'ChargeItem', resource, match, clock);
      written.add(id);
      touched.entities.push(`ChargeItem/${id}`);
    }
  }

  /**
   * The charge's transaction id, for the patient; else its code on its date at its visit (or
   * at none). One with neither an id nor a date cannot be told from another and is added.
   */
  private criteria(
    identifier: Identifier | undefined,
    resource: Record<string, unknown>,
    patientId: string,
    encounterId: string | undefined,
  ): string | undefined {
    const byId = byIdentifier(identifier);
    if (byId) return `${byId}&patient=Patient/${patientId}`;
    const at = startOf(resource, 'occurrence');
    const byCode = codeCriteria('patient', patientId, resource);
    if (!at || !byCode) return undefined;
    const visit = encounterId ? `context=Encounter/${encounterId}` : 'context:missing=true';
    return `${byCode}&${atInstant('occurrence', at)}&${visit}`;
  }
}
