import { Injectable } from '@nestjs/common';
import { UnitOfWork } from '../../database/unit-of-work.js';
import { CriteriaMatches } from '../../fhir/criteria-matches.service.js';
import { FhirService } from '../../fhir/fhir.service.js';
import { identifierType } from '../mapping/datatypes.js';
import { medicationRequestOfRxo } from '../mapping/medication.js';
import { orderChangeOf, orderIdentifiers, serviceRequestOf } from '../mapping/orders.js';
import { Hl7ProcessingError } from '../message/hl7-header.js';
import type { V2Message, V2Segment } from '../message/v2-message.js';
import { tieEarlyResults, untiedWarning } from './early-results.js';
import { orderAnswers, type OrderAnswer } from './order-answers.js';
import { patientsOrderOf, unnumberedOrder, upsertOrder } from './order-numbers.js';
import type { PatientOfMessage, Touched } from './processing.js';
import { filePrescription } from './prescriptions.js';
import { visitOf } from './record-owners.js';
import { obrSpecimen, spmSpecimen } from './specimens.js';

/** General clinical orders (ORM, OML, OMG), for Hl7Processor, in its transaction. */
@Injectable()
export class OrderMessages {
  constructor(
    private readonly fhir: FhirService,
    private readonly matches: CriteriaMatches,
    private readonly unitOfWork: UnitOfWork,
  ) {}

  /**
   * ORM^O01, OML^O21 and OMG^O19 (a general clinical order): a ServiceRequest per order (an ORC,
   * with the OBR after it if any); a pharmacy order (an ORC with an RXO and no OBR: ORM's, and
   * OMP^O09's, whose ORDER group is ORC, TQ1, RXO, RXR, RXC and OBX) a MedicationRequest, its
   * components (RXC) its contained Medication's ingredients (see medicationOf).
   * An OMP's order (`pharmacy`) needs its RXO: one without is no ServiceRequest.
   */
  async process(
    message: V2Message,
    { sender, patientId, touched, clock }: PatientOfMessage,
    pharmacy = false,
  ): Promise<Touched> {
    const orders: {
      orc?: V2Segment;
      obr?: V2Segment;
      timing?: V2Segment;
      notes: V2Segment[];
      specimens: V2Segment[];
      /**
       * Its ask-at-order-entry answers: each OBX after its OBR (or its RXO), before any SPM,
       * with its NTE.
       */
      answers: OrderAnswer[];
      /** A pharmacy order (RXO, ORM's ORDER_DETAIL choice), with its route (RXR). */
      rxo?: V2Segment;
      rxr?: V2Segment;
      /** Its components (RXC: an IV admixture's), after it, before its OBX. */
      components: V2Segment[];
    }[] = [];
    // The NTE right after an OBR are its order's comments (an OBX after it has its own).
    let notes: V2Segment[] | undefined;
    // Whether an OBX now is the order's (after its OBR or RXO) or its specimen's (after an SPM).
    let answering = false;
    for (const segment of message.segments()) {
      if (segment.name === 'NTE') notes?.push(segment);
      else notes = undefined;
      if (segment.name === 'SPM' || segment.name === 'ORC') answering = false;
      if (segment.name === 'OBX' && answering) {
        const answer = { obx: segment, notes: [] };
        orders.at(-1)!.answers.push(answer);
        notes = answer.notes;
      }
      // An order's timing (TQ1) comes after its ORC, before its OBR or after it (OML, OMG).
      const last = orders.at(-1);
      if (segment.name === 'TQ1' && last) last.timing ??= segment;
      // Its specimens (SPM: OML, OMG) come after its OBR, each with its own OBX and SAC.
      if (segment.name === 'SPM' && last?.obr) last.specimens.push(segment);
      if (segment.name === 'RXO' && last && !last.obr) {
        last.rxo ??= segment;
        // The NTE right after it are the prescriber's notes, as an OBR's are its order's.
        if (last.rxo === segment) notes = last.notes;
        // ORM's ORDER_DETAIL: the OBX after an RXO are its OBSERVATION group, as after an OBR.
        answering = true;
      }
      if (segment.name === 'RXR' && last?.rxo) last.rxr ??= segment;
      if (segment.name === 'RXC' && last?.rxo && !last.obr && last.answers.length === 0) {
        last.components.push(segment);
      }
      if (segment.name === 'ORC') {
        orders.push({ orc: segment, notes: [], specimens: [], answers: [], components: [] });
      } else if (segment.name === 'OBR') {
        const last = orders.at(-1);
        if (last && !last.obr) last.obr = segment;
        else orders.push({ obr: segment, notes: [], specimens: [], answers: [], components: [] });
        notes = orders.at(-1)!.notes;
        answering = true;
      }
    }
    if (orders.length === 0) {
      throw new Hl7ProcessingError('100', 'An order message needs an ORC or OBR segment');
    }
    if (pharmacy && orders.some(({ rxo }) => !rxo)) {
      throw new Hl7ProcessingError('100', 'A pharmacy order (OMP) needs an RXO segment');
    }
    const encounter = await visitOf(this.fhir, this.matches, message, sender, patientId);
    const untied: string[] = [];
    // The orders on file that an earlier order of this message is: two alike in it stay two.
    const taken = new Set<string>();
    for (const order of orders) {
      const { orc, obr, timing, notes: comments, specimens, answers, rxo, rxr } = order;
      const identifiers = orderIdentifiers(orc, sender, obr);
      if (rxo && !obr) {
        const prescription = medicationRequestOfRxo(
          orc,
          rxo,
          rxr,
          patientId,
          identifiers,
          sender,
          timing,
          order.components,
        );
        if (!prescription) {
          throw new Hl7ProcessingError(
            '101',
            'An RXO segment needs a requested give code (RXO-1) or its components (RXC)',
          );
        }
        await filePrescription(
          this.fhir,
          this.matches,
          { orc, prescription, identifiers, notes: comments, answers, encounter },
          { sender, patientId, touched, clock },
        );
        continue;
      }
      const request = serviceRequestOf(orc, obr, patientId, identifiers, {
        notes: comments,
        senderSystem: sender,
        timing,
      });
      const change = orderChangeOf(orc, 'ServiceRequest');
      // The order on file, looked up once for its specimens, its answers and its upsert: by its
      // numbers, else, for a new order of none, by what it says (see unnumberedOrder).
      let lookup: Promise<string | undefined> | undefined;
      const stored = () =>
        (lookup ??=
          identifiers.length === 0 && change.whole
            ? unnumberedOrder(
                this.fhir,
                this.matches,
                { ...request, ...encounter },
                patientId,
                taken,
              )
            : patientsOrderOf(this.fhir, this.matches, 'ServiceRequest', identifiers, patientId));
      const specimen = await this.orderSpecimens(specimens, obr, stored, patientId, {
        sender,
        touched,
      });
      touched.entities.push(...specimen.map(({ reference }) => reference));
      const supportingInfo = await orderAnswers(this.fhir, 'ServiceRequest', answers, {
        obr,
        storedOrder: stored,
        sender,
        patientId,
        encounter,
        clock,
      });
      touched.entities.push(...supportingInfo.map(({ reference }) => reference));
      const id = await upsertOrder(
        this.fhir,
        this.matches,
        'ServiceRequest',
        {
          ...request,
          ...encounter,
          ...(specimen.length > 0 ? { specimen } : {}),
          ...(supportingInfo.length > 0 ? { supportingInfo } : {}),
        },
        identifiers,
        patientId,
        change,
        clock,
        stored,
      );
      taken.add(id);
      touched.entities.push(`ServiceRequest/${id}`);
      const placer = identifiers.find((identifier) => identifierType(identifier) === 'PLAC');
      const early = await tieEarlyResults(
        this.fhir,
        this.matches,
        this.unitOfWork,
        placer,
        id,
        patientId,
      );
      touched.entities.push(...early.tied);
      untied.push(...early.untied);
    }
    const warning = untiedWarning(untied);
    if (warning) (touched.warnings ??= []).push(warning);
    return touched;
  }

  /**
   * The Specimens an order is for, as the IG's OML map has them: each SPM after its OBR (known
   * again by its id, see spmSpecimen), else its OBR-15 (v2.3, v2.4: see obrSpecimen, written
   * over the one the order on file refers to). Dropped until 2026-12-07: an order named no
   * specimen, and the lab's results for it had none to match.
   */
  private async orderSpecimens(
    specimens: readonly V2Segment[],
    obr: V2Segment | undefined,
    storedOrder: () => Promise<string | undefined>,
    patientId: string,
    { sender, touched }: { sender: string | undefined; touched: Touched },
  ): Promise<{ reference: string }[]> {
    const ids: string[] = [];
    for (const spm of specimens) {
      ids.push(await spmSpecimen(this.fhir, this.matches, spm, patientId, sender, touched));
    }
    if (ids.length === 0 && obr?.value(15)) {
      const stored = await storedOrder();
      const holder = stored ? { type: 'ServiceRequest' as const, id: stored } : undefined;
      const id = await obrSpecimen(this.fhir, obr, patientId, [holder]);
      if (id) ids.push(id);
    }
    return [...new Set(ids)].map((id) => ({ reference: `Specimen/${id}` }));
  }
}
