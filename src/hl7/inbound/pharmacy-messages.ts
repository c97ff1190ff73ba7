import { Injectable } from '@nestjs/common';
import { FhirService } from '../../fhir/fhir.service.js';
import type { Identifier } from '../mapping/datatypes.js';
import {
  medicationDispenseOf,
  medicationRequestOf,
  orderChangeOf,
  orderIdentifiers,
} from '../mapping/orders.js';
import { Hl7ProcessingError } from '../message/hl7-header.js';
import type { V2Message, V2Segment } from '../message/v2-message.js';
import {
  byIdentifier,
  patientsNumbered,
  upsertOrder,
  visitOf,
  writeOver,
  type PatientOfMessage,
  type Touched,
} from './processing.js';

/** A dispense's identity: its order's number and its dispense sub-id counter (RXD-1). */
function dispenseIdentifier(order: Identifier | undefined, rxd: V2Segment): Identifier | undefined {
  if (!order) return undefined;
  return {
    ...(order.system ? { system: order.system } : {}),
    value: `${order.value}/dispense/${rxd.value(1) ?? '1'}`,
  };
}

/**
 * The route (RXR) of the RXE or RXD at `at`: the first RXR after it, before the next order,
 * give or dispense (senders put TQ1 and PRT segments between).
 */
function routeOf(segments: readonly V2Segment[], at: number): V2Segment | undefined {
  for (const segment of segments.slice(at + 1)) {
    if (segment.name === 'RXR') return segment;
    if (['ORC', 'RXE', 'RXD'].includes(segment.name)) return undefined;
  }
  return undefined;
}

/** Pharmacy messages (orders, refills, dispenses), for Hl7Processor, in its transaction. */
@Injectable()
export class PharmacyMessages {
  constructor(private readonly fhir: FhirService) {}

  /**
   * RDE^O11, RDE^O25 (a refill authorized) and RDS^O13 (a dispense): a MedicationRequest per
   * RXE, keyed by its ORC's order numbers, and a MedicationDispense per RXD, keyed by the order
   * number and its dispense counter (RXD-1), so that a resend replaces it; the dispense is
   * authorized by its order's MedicationRequest when it is known here. A message older than
   * one already applied to an order or a dispense leaves it as it is.
   */
  async process(
    message: V2Message,
    { sender, patientId, touched, clock }: PatientOfMessage,
  ): Promise<Touched> {
    const encounter = await visitOf(this.fhir, message, sender, patientId);
    const segments = message.segments();
    let orc: V2Segment | undefined;
    let request: string | undefined;
    for (const [i, segment] of segments.entries()) {
      if (segment.name === 'ORC') [orc, request] = [segment, undefined];
      if (segment.name !== 'RXE' && segment.name !== 'RXD') continue;
      const rxr = routeOf(segments, i);
      const identifiers = orderIdentifiers(orc, sender);
      if (segment.name === 'RXE') {
        const body = medicationRequestOf(orc, segment, rxr, patientId, identifiers, sender);
        if (!body) {
          throw new Hl7ProcessingError('101', 'An RXE segment needs a give code (RXE-2)');
        }
        request = await upsertOrder(
          this.fhir,
          'MedicationRequest',
          { ...body, ...encounter },
          byIdentifier(identifiers[0]),
          patientId,
          orderChangeOf(orc, 'MedicationRequest'),
          clock,
        );
        touched.entities.push(`MedicationRequest/${request}`);
        continue;
      }
      const orderCriteria = byIdentifier(identifiers[0]);
      if (!request && orderCriteria) {
        // Another patient's order is not this dispense's prescription (see patientsNumbered).
        request = await patientsNumbered(this.fhir, 'MedicationRequest', orderCriteria, patientId);
      }
      const identifier = dispenseIdentifier(identifiers[0], segment);
      const dispenseCriteria = byIdentifier(identifier);
      const dispensed = dispenseCriteria
        ? await patientsNumbered(this.fhir, 'MedicationDispense', dispenseCriteria, patientId)
        : undefined;
      const body = medicationDispenseOf(
        segment,
        rxr,
        patientId,
        identifier,
        request ? { reference: `MedicationRequest/${request}` } : undefined,
        sender,
      );
      if (!body) {
        throw new Hl7ProcessingError('101', 'An RXD segment needs a dispense code (RXD-2)');
      }
      const context = encounter.encounter ? { context: encounter.encounter } : {};
      const id = await writeOver(
        this.fhir,
        'MedicationDispense',
        { ...body, ...context },
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
