import { Injectable } from '@nestjs/common';
import { CriteriaMatches } from '../../fhir/criteria-matches.service.js';
import { FhirService } from '../../fhir/fhir.service.js';
import type { Identifier } from '../mapping/datatypes.js';
import { medicationDispenseOf, medicationRequestOf } from '../mapping/medication.js';
import { orderIdentifiers } from '../mapping/orders.js';
import { Hl7ProcessingError } from '../message/hl7-header.js';
import type { V2Message, V2Segment } from '../message/v2-message.js';
import { giveAnswers, giveComponents, giveNotes, orderAnswers } from './order-answers.js';
import { patientsNumbered, patientsOrderOf } from './order-numbers.js';
import { byIdentifier, writeOver, type PatientOfMessage, type Touched } from './processing.js';
import { filePrescription } from './prescriptions.js';
import { visitOf } from './record-owners.js';

/** A dispense's identity: its order's number and its dispense sub-id counter (RXD-1). */
function dispenseIdentifier(order: Identifier | undefined, rxd: V2Segment): Identifier | undefined {
  if (!order) return undefined;
  return {
    ...(order.system ? { system: order.system } : {}),
    value: `${order.value}/dispense/${rxd.value(1) ?? '1'}`,
  };
}

/**
 * The route (RXR) or timing (TQ1) of the RXE or RXD at `at`: the first such segment after it,
 * before the next order, give or dispense (senders put TQ1, RXR and PRT segments in any order).
 */
function following(
  segments: readonly V2Segment[],
  at: number,
  name: 'RXR' | 'TQ1',
): V2Segment | undefined {
  for (const segment of segments.slice(at + 1)) {
    if (segment.name === name) return segment;
    if (['ORC', 'RXE', 'RXD'].includes(segment.name)) return undefined;
  }
  return undefined;
}

/** Pharmacy messages (orders, refills, dispenses), for Hl7Processor, in its transaction. */
@Injectable()
export class PharmacyMessages {
  constructor(
    private readonly fhir: FhirService,
    private readonly matches: CriteriaMatches,
  ) {}

  /**
   * RDE^O11, RDE^O25 (a refill authorized) and RDS^O13 (a dispense): a MedicationRequest per
   * RXE, keyed by its ORC's order numbers, with the NTE right after it as its note and the OBX
   * after it (a weight, a creatinine) as Observations in its supportingInformation (see
   * giveNotes, orderAnswers; both dropped until 2026-12-07), and a MedicationDispense per RXD,
   * keyed by the order number and its dispense counter (RXD-1), so that a resend replaces it,
   * with the OBX after it (an INR) in its supportingInformation (dropped until 2026-12-07); the
   * dispense is authorized by its order's MedicationRequest when it is known here. A give's or
   * dispense's components (RXC) are its contained Medication's ingredients (see medicationOf).
   * A message older than one already applied to an order or a dispense leaves it as it is.
   */
  async process(
    message: V2Message,
    { sender, patientId, touched, clock }: PatientOfMessage,
  ): Promise<Touched> {
    const encounter = await visitOf(this.fhir, this.matches, message, sender, patientId);
    const segments = message.segments();
    let orc: V2Segment | undefined;
    let request: string | undefined;
    // The order's own timing: the TQ1 after its ORC, before its give (RXE) or dispense.
    let ordered: V2Segment | undefined;
    let given = false;
    for (const [i, segment] of segments.entries()) {
      if (segment.name === 'ORC')
        [orc, request, ordered, given] = [segment, undefined, undefined, false];
      if (segment.name === 'TQ1' && !given) ordered ??= segment;
      if (segment.name !== 'RXE' && segment.name !== 'RXD') continue;
      given = true;
      const rxr = following(segments, i, 'RXR');
      const identifiers = orderIdentifiers(orc, sender);
      if (segment.name === 'RXE') {
        // The give's own timing (RDE's TIMING_ENCODED), else the order's.
        const timing = following(segments, i, 'TQ1') ?? ordered;
        const body = medicationRequestOf(
          orc,
          segment,
          rxr,
          patientId,
          identifiers,
          sender,
          timing,
          giveComponents(segments, i),
        );
        if (!body) {
          throw new Hl7ProcessingError(
            '101',
            'An RXE segment needs a give code (RXE-2) or its components (RXC)',
          );
        }
        request = await filePrescription(
          this.fhir,
          this.matches,
          {
            orc,
            prescription: body,
            identifiers,
            notes: giveNotes(segments, i),
            answers: giveAnswers(segments, i),
            encounter,
          },
          { sender, patientId, touched, clock },
        );
        continue;
      }
      if (!request) {
        // Another patient's order is not this dispense's prescription (see patientsNumbered).
        request = await patientsOrderOf(
          this.fhir,
          this.matches,
          'MedicationRequest',
          identifiers,
          patientId,
        );
      }
      const identifier = dispenseIdentifier(identifiers[0], segment);
      const dispenseCriteria = byIdentifier(identifier);
      const dispensed = dispenseCriteria
        ? await patientsNumbered(
            this.fhir,
            this.matches,
            'MedicationDispense',
            dispenseCriteria,
            patientId,
          )
        : undefined;
      const body = medicationDispenseOf(
        segment,
        rxr,
        patientId,
        identifier,
        request ? { reference: `MedicationRequest/${request}` } : undefined,
        sender,
        giveComponents(segments, i),
        giveNotes(segments, i),
      );
      if (!body) {
        throw new Hl7ProcessingError(
          '101',
          'An RXD segment needs a dispense code (RXD-2) or its components (RXC)',
        );
      }
      const context = encounter.encounter ? { context: encounter.encounter } : {};
      const supportingInformation = await orderAnswers(
        this.fhir,
        'MedicationDispense',
        giveAnswers(segments, i),
        {
          obr: undefined,
          storedOrder: () => Promise.resolve(dispensed),
          sender,
          patientId,
          encounter,
          clock,
        },
      );
      touched.entities.push(...supportingInformation.map(({ reference }) => reference));
      const id = await writeOver(
        this.fhir,
        'MedicationDispense',
        {
          ...body,
          ...context,
          ...(supportingInformation.length > 0 ? { supportingInformation } : {}),
        },
        dispensed,
        clock,
      );
      touched.entities.push(`MedicationDispense/${id}`);
    }
    if (touched.entities.length === 1) {
      throw new Hl7ProcessingError('100', 'A pharmacy message needs an RXE or RXD segment');
    }
    return touched;
  }
}
