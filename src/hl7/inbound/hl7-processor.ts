import { Injectable } from '@nestjs/common';
import { CriteriaMatches } from '../../fhir/criteria-matches.service.js';
import { FhirService } from '../../fhir/fhir.service.js';
import { referralFromRf1 } from '../mapping/referral.js';
import { Hl7ProcessingError, Hl7RejectError, type Hl7Header } from '../message/hl7-header.js';
import type { V2Message, V2Segment } from '../message/v2-message.js';
import { AppointmentMessages, SIU_EVENTS } from './appointment-messages.js';
import { ChargeMessages, DFT_EVENTS } from './charge-messages.js';
import { DocumentMessages, MDM_EVENTS } from './document-messages.js';
import { OrderMessages } from './order-messages.js';
import { PharmacyMessages } from './pharmacy-messages.js';
import { PatientSegments, type SegmentContext } from './patient-segments.js';
import { Visits, type VisitEvent } from './visits.js';
import { PPR_EVENTS, ProblemMessages } from './problem-messages.js';
import { ResultMessages } from './result-messages.js';
import { VisitMoves } from './visit-moves.js';
import { MessagePatients, senderSystem } from './message-patients.js';
import { PatientLinks } from './patient-links.js';
import { PatientMerges } from './patient-merges.js';
import { eventInstant } from './event-order.js';
import { VaccinationMessages } from './vaccination-messages.js';
import { patientsNumbered } from './order-numbers.js';
import { byIdentifier, required, writeOver, type Touched } from './processing.js';

const ADT_EVENTS: Record<string, VisitEvent | undefined> = {
  A01: { status: 'in-progress' },
  A02: { status: 'in-progress' }, // transfer: the new location (PV1-3)
  A03: { status: 'finished', known: 'A discharge' },
  A04: { status: 'planned' }, // registered, as the IG maps it
  A05: { status: 'planned' },
  A06: { status: 'in-progress' }, // outpatient to inpatient: the new class (PV1-2)
  A07: { status: 'in-progress' }, // inpatient to outpatient
  A08: { status: 'unknown', updatesOnly: true }, // the IG's status, never written
  // Tracking (departing, arriving) and pending transfers and discharges, and their
  // cancellations, change no status R4 has: the visit's details only, as A08 (ADT feeds send
  // them all, and a receiver refusing them would have its sender's queue stop).
  A09: { status: 'unknown', updatesOnly: true },
  A10: { status: 'unknown', updatesOnly: true },
  A11: { status: 'cancelled', known: 'A cancelled admission' },
  A12: { status: 'in-progress', known: 'A cancelled transfer' }, // back to PV1-3
  A13: { status: 'in-progress', known: 'A cancelled discharge', reopens: true },
  A14: { status: 'planned' }, // pending admission, as a pre-admission (A05)
  A15: { status: 'unknown', updatesOnly: true },
  A16: { status: 'unknown', updatesOnly: true },
  A25: { status: 'unknown', updatesOnly: true },
  A26: { status: 'unknown', updatesOnly: true },
  A27: { status: 'cancelled', known: 'A cancelled pending admission' },
  // A leave of absence (the bed kept) is R4's onleave, until the patient returns (A22) or
  // either is cancelled (A52, A53); a pre-admission cancelled (A38) is as A11 for an admission.
  A21: { status: 'onleave', known: 'A leave of absence' },
  A22: { status: 'in-progress', known: 'A return from a leave of absence' },
  A52: { status: 'in-progress', known: 'A cancelled leave of absence' },
  A53: { status: 'onleave', known: 'A cancelled return from a leave of absence' },
  A38: { status: 'cancelled', known: 'A cancelled pre-admission' },
  A32: { status: 'unknown', updatesOnly: true }, // tracking cancelled: arriving (A10)
  A33: { status: 'unknown', updatesOnly: true }, // and departing (A09)
  A28: undefined,
  A31: undefined,
  A40: undefined,
  // Merges as versions before 2.3.1 sent them (withdrawn in 2.6, still sent by older feeds): a
  // PID and the MRG of the prior patient, as A40's. A36 also merges the account (MRG-3), and
  // accounts are not kept here.
  A18: undefined,
  A34: undefined,
  A36: undefined,
  A45: undefined, // a visit moved to another patient
  A24: undefined, // two patients linked (see PatientLinks)
  A37: undefined, // and unlinked
  A47: undefined,
  A60: undefined, // adverse reactions (IAM)
};

/** What precedes the patient (PID) in any structure, and the patient's own segments. */
const MESSAGE_HEADER: ReadonlySet<string> = new Set(['MSH', 'SFT', 'UAC', 'EVN']);
const PATIENT_HEADER: ReadonlySet<string> = new Set([...MESSAGE_HEADER, 'PID', 'PD1', 'ROL']);

const MERGE_EVENTS: ReadonlySet<string> = new Set(['A40', 'A18', 'A34', 'A36']);

/**
 * Accounts added or updated (BAR P01, P05) and their diagnoses and procedures updated (P12):
 * accounts are not kept here, but the patient, a known visit's details and the clinical
 * segments (DG1, PR1, AL1, OBX, IN1...) they carry are, as an A08 would have them.
 */
const BAR_EVENTS: ReadonlySet<string> = new Set(['P01', 'P05', 'P12']);

/**
 * Results (OBX) one message may hold where each becomes an Observation (results, and the OBX of
 * ADT, BAR and DFT): all are validated, indexed and encrypted in the message's transaction, and
 * 20,000 of them took 63 s to ACK. The largest sample has 29; a long report a few hundred. An
 * MDM's OBX are lines of one document, and are not counted.
 */
export const MAX_RESULTS_PER_MESSAGE = 1000;

/** General clinical orders, and pharmacy orders of the placer (OMP), for OrderMessages. */
const ORDER_TYPES: ReadonlySet<string> = new Set(['ORM^O01', 'OML^O21', 'OMG^O19', 'OMP^O09']);

/** A referral (REF^I12), its change (I13) and its cancellation (I14). */
const REF_EVENTS: ReadonlySet<string> = new Set(['I12', 'I13', 'I14']);

/** The message types (MSH-9.1) with at least one event mapped below. */
const MAPPED_MESSAGE_CODES: ReadonlySet<string> = new Set([
  ...['ADT', 'MDM', 'SIU', 'PPR', 'BAR', 'DFT', 'REF', 'ORU', 'OUL'],
  ...['ORM', 'OML', 'OMG', 'OMP', 'VXU', 'RDE', 'RDS'],
]);

/**
 * Turns a stored message into FHIR resources through FhirService (validation, encryption,
 * search index), in the caller's transaction, so that the resources and the message's status
 * commit together.
 */
@Injectable()
export class Hl7Processor {
  constructor(
    private readonly fhir: FhirService,
    private readonly matches: CriteriaMatches,
    private readonly documents: DocumentMessages,
    private readonly appointments: AppointmentMessages,
    private readonly problems: ProblemMessages,
    private readonly pharmacy: PharmacyMessages,
    private readonly visits: Visits,
    private readonly patientSegments: PatientSegments,
    private readonly charges: ChargeMessages,
    private readonly visitMoves: VisitMoves,
    private readonly results: ResultMessages,
    private readonly patients: MessagePatients,
    private readonly merges: PatientMerges,
    private readonly links: PatientLinks,
    private readonly vaccinations: VaccinationMessages,
    private readonly orders: OrderMessages,
  ) {}

  async process(message: V2Message, header: Hl7Header): Promise<Touched> {
    const type = `${header.messageCode}^${header.triggerEvent}`;
    if (header.messageCode !== 'MDM') assertResultCount(message);
    if (header.messageCode === 'ADT') {
      if (!Object.hasOwn(ADT_EVENTS, header.triggerEvent)) {
        throw new Hl7RejectError('201', 'Unsupported event code');
      }
      if (MERGE_EVENTS.has(header.triggerEvent)) return this.merges.merge(message);
      if (header.triggerEvent === 'A47') return this.merges.changeIdentifiers(message);
      if (header.triggerEvent === 'A24') return this.links.link(message);
      if (header.triggerEvent === 'A37') return this.links.unlink(message);
      if (header.triggerEvent === 'A45') {
        return this.visitMoves.process(message, await this.patients.of(message));
      }
      return this.adt(message, ADT_EVENTS[header.triggerEvent]);
    }
    if (header.messageCode === 'MDM') {
      const event = MDM_EVENTS[header.triggerEvent];
      if (!event) {
        throw new Hl7RejectError('201', 'Unsupported event code');
      }
      return this.documents.process(message, event, await this.patients.of(message));
    }
    if (header.messageCode === 'SIU') {
      const event = SIU_EVENTS[header.triggerEvent];
      if (!event) {
        throw new Hl7RejectError('201', 'Unsupported event code');
      }
      return this.appointments.process(message, event, await this.patients.of(message));
    }
    if (header.messageCode === 'PPR' && PPR_EVENTS.has(header.triggerEvent)) {
      return this.problems.process(message, header.triggerEvent, await this.patients.of(message));
    }
    if (header.messageCode === 'BAR' && BAR_EVENTS.has(header.triggerEvent)) {
      // An account may list several visits, each PV1 with its own diagnoses and procedures.
      return this.eachPart(message.splitAt('PV1', PATIENT_HEADER), (part) =>
        this.adt(part, ADT_EVENTS['A08']),
      );
    }
    if (header.messageCode === 'DFT' && DFT_EVENTS.has(header.triggerEvent)) {
      // What a BAR keeps (the patient, a known visit's details, its segments), and the charges.
      const { context, recorded, touched } = await this.withSegments(message, ADT_EVENTS['A08']);
      await this.charges.process(message, context, recorded, touched);
      return touched;
    }
    if (header.messageCode === 'REF' && REF_EVENTS.has(header.triggerEvent)) {
      return this.referral(message, header.triggerEvent === 'I14');
    }
    if (type === 'ORU^R01') {
      // A lab may send several patients' results in one message, each after its own PID.
      const parts = message.splitAt('PID', MESSAGE_HEADER);
      await this.patients.lockAll(parts);
      return this.eachPart(parts, async (part) =>
        this.results.process(part, false, await this.patients.of(part)),
      );
    }
    if (type === 'OUL^R24') {
      return this.results.process(message, false, await this.patients.of(message));
    }
    if (type === 'OUL^R22' || type === 'OUL^R23') {
      return this.results.process(message, true, await this.patients.of(message));
    }
    // OMP^O09, a pharmacy order (ORC, RXO, RXR, TQ1, OBX), is an ORM's pharmacy order: until
    // 2026-12-07 it was refused as a message type not supported (AR, 200).
    if (ORDER_TYPES.has(type)) {
      const pharmacy = type === 'OMP^O09';
      return this.orders.process(message, await this.patients.of(message), pharmacy);
    }
    if (type === 'VXU^V04') {
      return this.vaccinations.process(message, await this.patients.of(message));
    }
    if (type === 'RDE^O11' || type === 'RDE^O25' || type === 'RDS^O13') {
      return this.pharmacy.process(message, await this.patients.of(message));
    }
    // Table 0357: 201 when the type is taken but not this event (BAR^P02), so that the sender
    // is not told a type it sends every day is unknown here; 200 for a type never taken.
    throw MAPPED_MESSAGE_CODES.has(header.messageCode)
      ? new Hl7RejectError('201', 'Unsupported event code')
      : new Hl7RejectError('200', 'Unsupported message type');
  }

  /** Each part processed in turn, in the message's transaction, with all they touched. */
  private async eachPart(
    parts: V2Message[],
    process: (part: V2Message) => Promise<Touched>,
  ): Promise<Touched> {
    const entities = new Set<string>();
    const patientIds = new Set<string>();
    const kept = new Set<string>();
    const keptByStatus = new Set<string>();
    const warnings: string[] = [];
    for (const part of parts) {
      const done = await process(part);
      for (const entity of done.entities) entities.add(entity);
      for (const id of done.patientIds) patientIds.add(id);
      for (const type of done.kept) kept.add(type);
      for (const type of done.keptByStatus ?? []) keptByStatus.add(type);
      warnings.push(...(done.warnings ?? []));
    }
    return {
      entities: [...entities],
      patientIds: [...patientIds],
      kept: [...kept],
      ...(keptByStatus.size > 0 ? { keptByStatus: [...keptByStatus] } : {}),
      ...(warnings.length > 0 ? { warnings } : {}),
    };
  }

  private async adt(message: V2Message, event: VisitEvent | undefined): Promise<Touched> {
    return (await this.withSegments(message, event)).touched;
  }

  /**
   * The patient, the visit as the event has it, and the segments that come with them (with the
   * Procedure each PR1 was recorded as).
   */
  private async withSegments(
    message: V2Message,
    event: VisitEvent | undefined,
  ): Promise<{ context: SegmentContext; recorded: Map<V2Segment, string>; touched: Touched }> {
    const { sender, patientId, touched, clock } = await this.patients.of(message);
    const pv1 = message.first('PV1');
    const encounterId =
      event && pv1
        ? await this.visits.upsert(
            pv1,
            message.first('PV2'),
            patientId,
            event,
            sender,
            touched,
            eventInstant(message),
          )
        : undefined;
    if (encounterId) touched.entities.push(`Encounter/${encounterId}`);
    const context = { sender, patientId, encounterId, clock };
    const recorded = await this.patientSegments.record(message, context, touched);
    return { context, recorded, touched };
  }

  /**
   * REF^I12 (a referral), I13 (its change) and I14 (its cancellation): the patient and the
   * segments ADT has too (DG1, PR1, AL1, OBX, NK1, IN1), and the RF1 as a referral
   * ServiceRequest keyed by its originating referral identifier (RF1-6), for the reasons the DG1
   * diagnoses give. A cancellation revokes a known referral.
   */
  private async referral(message: V2Message, cancels: boolean): Promise<Touched> {
    const rf1 = required(message, 'RF1');
    const { context, touched } = await this.withSegments(message, undefined);
    const { patientId, clock } = context;
    const { identifier, resource } = referralFromRf1(
      rf1,
      message.all('PRD'),
      patientId,
      senderSystem(message),
    );
    const criteria = byIdentifier(identifier);
    if (!criteria) {
      throw new Hl7ProcessingError(
        '101',
        'RF1-6 (the originating referral identifier) is required',
      );
    }
    // The patient's own referral of that number; another patient's is refused (ERR 205), as an
    // order's is: until 2026-12-07 it was written over and moved to this patient.
    const match = await patientsNumbered(
      this.fhir,
      this.matches,
      'ServiceRequest',
      criteria,
      patientId,
      'RF1-6',
    );
    if (cancels && !match) {
      throw new Hl7ProcessingError(
        '204',
        'A cancelled referral needs the identifier (RF1-6) of a known referral',
      );
    }
    const reasons = touched.entities
      .filter((entity) => entity.startsWith('Condition/'))
      .map((reference) => ({ reference }));
    const body = {
      ...resource,
      ...(cancels ? { status: 'revoked' } : {}),
      ...(reasons.length > 0 ? { reasonReference: reasons } : {}),
    };
    const id = await writeOver(this.fhir, 'ServiceRequest', body, match, clock);
    touched.entities.push(`ServiceRequest/${id}`);
    return touched;
  }
}

function assertResultCount(message: V2Message): void {
  const results = message.segments().filter((segment) => segment.name === 'OBX').length;
  if (results > MAX_RESULTS_PER_MESSAGE) {
    throw new Hl7ProcessingError(
      '207',
      `The message has ${results} OBX segments; at most ${MAX_RESULTS_PER_MESSAGE} are taken in one message: send the results in several`,
    );
  }
}
