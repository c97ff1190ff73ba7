import { Injectable } from '@nestjs/common';
import { CriteriaMatches } from '../../fhir/criteria-matches.service.js';
import { FhirService } from '../../fhir/fhir.service.js';
import { HL7_USER } from '../hl7-user.js';
import type { Identifier } from '../mapping/datatypes.js';
import { documentFromTxa } from '../mapping/document.js';
import { Hl7ProcessingError } from '../message/hl7-header.js';
import type { V2Message } from '../message/v2-message.js';
import {
  byIdentifier,
  required,
  without,
  writeOver,
  type PatientOfMessage,
  type Touched,
} from './processing.js';
import { knownVisit } from './record-owners.js';

/**
 * What an MDM event does to the document of its TXA: notifications (T01, T03, T05, T07, T09)
 * and the same with content (T02, T04, T06, T08, T10) of an original, a status change, an
 * addendum, an edit and a replacement; T11 cancels.
 */
export type MdmEvent = 'document' | 'appends' | 'replaces' | 'cancel';

export const MDM_EVENTS: Record<string, MdmEvent | undefined> = {
  T01: 'document',
  T02: 'document',
  T03: 'document',
  T04: 'document',
  T05: 'appends',
  T06: 'appends',
  T07: 'document',
  T08: 'document',
  T09: 'replaces',
  T10: 'replaces',
  T11: 'cancel',
};

/** MDM messages (documents), for Hl7Processor, in its transaction. */
@Injectable()
export class DocumentMessages {
  constructor(
    private readonly fhir: FhirService,
    private readonly matches: CriteriaMatches,
  ) {}

  /**
   * MDM: the TXA's document, with the content of the OBX segments, as a DocumentReference keyed
   * by its unique document number (TXA-12), so that a status change or an edit updates it. A
   * notification without content keeps the content stored. An addendum `appends` to its parent
   * (TXA-13), a replacement `replaces` it and makes it superseded; a parent not known here is
   * referred to by its number. A cancellation marks a known document entered in error. A
   * message older than one already applied to the document leaves it as it is.
   */
  async process(
    message: V2Message,
    event: MdmEvent,
    { sender, patientId, touched, clock }: PatientOfMessage,
  ): Promise<Touched> {
    const txa = required(message, 'TXA');
    const document = documentFromTxa(txa, message.all('OBX'), patientId, sender);
    const criteria = byIdentifier(document.identifier);
    if (!criteria) {
      throw new Hl7ProcessingError('101', 'TXA-12 (unique document number) is required');
    }
    const match = await this.matches.uniqueMatch(HL7_USER, 'DocumentReference', criteria);
    const current = match
      ? (await this.fhir.read(HL7_USER, 'DocumentReference', match)).resource
      : undefined;
    if (event === 'cancel') {
      if (!match || !current) {
        throw new Hl7ProcessingError(
          '204',
          'A cancelled document needs the unique document number (TXA-12) of a known document',
        );
      }
      touched.entities.push(`DocumentReference/${match}`);
      if (await clock('DocumentReference', match)) return touched;
      await this.fhir.update(HL7_USER, 'DocumentReference', match, {
        ...without(current, 'meta'),
        status: 'entered-in-error',
        docStatus: 'entered-in-error',
        id: match,
      });
      return touched;
    }
    const relatesTo =
      event === 'document'
        ? undefined
        : await this.relatedDocument(document.parent, event, touched);
    const encounter = await knownVisit(this.fhir, this.matches, message, sender, patientId);
    const notSent = {
      attachment: { title: txa.value(25) ?? 'Document (its content was not sent)' },
    };
    // What the message does not speak of stays as stored: an edit keeps the document's status
    // (superseded, entered in error), its visit and what it relates to.
    const context = encounter
      ? { encounter: [{ reference: `Encounter/${encounter}` }] }
      : current?.['context'];
    const related = relatesTo ? [relatesTo] : current?.['relatesTo'];
    const resource = {
      ...document.resource,
      status: current?.['status'] ?? document.resource['status'],
      ...(context ? { context } : {}),
      ...(related ? { relatesTo: related } : {}),
      content: document.resource['content'] ?? current?.['content'] ?? [notSent],
    };
    const id = await writeOver(this.fhir, 'DocumentReference', resource, match, clock);
    touched.entities.push(`DocumentReference/${id}`);
    return touched;
  }

  /** The parent of an addendum or a replacement (TXA-13); a replaced one becomes superseded. */
  private async relatedDocument(
    parent: Identifier | undefined,
    code: 'appends' | 'replaces',
    touched: Touched,
  ): Promise<Record<string, unknown>> {
    const criteria = byIdentifier(parent);
    if (!criteria) {
      throw new Hl7ProcessingError(
        '101',
        `${code === 'appends' ? 'An addendum' : 'A replacement'} needs the parent document number (TXA-13)`,
      );
    }
    const parentId = await this.matches.uniqueMatch(HL7_USER, 'DocumentReference', criteria);
    if (!parentId) return { code, target: { identifier: parent } };
    if (code === 'replaces') {
      const stored = (await this.fhir.read(HL7_USER, 'DocumentReference', parentId)).resource;
      if (stored['status'] === 'current') {
        await this.fhir.update(HL7_USER, 'DocumentReference', parentId, {
          ...without(stored, 'meta'),
          status: 'superseded',
          id: parentId,
        });
      }
      touched.entities.push(`DocumentReference/${parentId}`);
    }
    return { code, target: { reference: `DocumentReference/${parentId}` } };
  }
}
