import { Injectable } from '@nestjs/common';
import { isDeepStrictEqual } from 'node:util';
import { CriteriaMatches } from '../../fhir/criteria-matches.service.js';
import { FhirService } from '../../fhir/fhir.service.js';
import { HL7_USER } from '../hl7-user.js';
import {
  appointmentFromSiu,
  participation,
  type AppointmentOfSiu,
  type AppointmentStatus,
  type Participant,
} from '../mapping/appointment.js';
import { Hl7ProcessingError } from '../message/hl7-header.js';
import type { V2Message } from '../message/v2-message.js';
import { Places } from './places.js';
import { patientsOrder } from './order-numbers.js';
import {
  byIdentifier,
  required,
  without,
  type PatientOfMessage,
  type Touched,
} from './processing.js';

/** What an SIU event does to the appointment of its SCH. */
export interface SiuEvent {
  /** The status the event gives, whatever SCH-25 says. */
  status?: AppointmentStatus;
  /** What the event is, when it needs a known appointment: for the error when it is not. */
  known?: string;
  /** A booking: booked unless SCH-25 says otherwise; other events keep the stored status. */
  books?: true;
  /**
   * An event about some of the appointment's services and resources (S18 to S22): what it does
   * to those its AIS, AIG, AIL and AIP segments list, the others staying as stored.
   */
  resources?: 'add' | 'cancel' | 'delete';
}

export const SIU_EVENTS: Record<string, SiuEvent | undefined> = {
  S12: { books: true }, // new appointment
  S13: {}, // rescheduled
  S14: {}, // modified
  S15: { status: 'cancelled', known: 'A cancellation' },
  S16: { status: 'cancelled', known: 'A discontinuation' },
  S17: { status: 'entered-in-error', known: 'A deletion' },
  S18: { known: 'An added service or resource', resources: 'add' },
  S19: { known: 'A modified service or resource', resources: 'add' },
  S20: { known: 'A cancelled service or resource', resources: 'cancel' },
  S21: { known: 'A discontinued service or resource', resources: 'cancel' },
  S22: { known: 'A deleted service or resource', resources: 'delete' },
  S26: { status: 'noshow', known: 'A no-show' },
};

/** The same actor: by reference (patients, places), else identifier, else name. */
function sameActor(a: Record<string, unknown>, b: Record<string, unknown>): boolean {
  if (a['reference'] || b['reference']) return a['reference'] === b['reference'];
  if (a['identifier'] || b['identifier'])
    return isDeepStrictEqual(a['identifier'], b['identifier']);
  return a['display'] === b['display'];
}

/**
 * What an S18 to S22 event does to a stored list (participants, services): those it lists are
 * added or replace their stored selves, are declined (`decline`), or are removed.
 */
function applied<T>(
  stored: T[],
  listed: T[],
  resources: 'add' | 'cancel' | 'delete',
  same: (a: T, b: T) => boolean,
  decline: (item: T) => T,
): T[] {
  const isListed = (item: T) => listed.some((other) => same(item, other));
  if (resources === 'add') return [...stored.filter((item) => !isListed(item)), ...listed];
  if (resources === 'cancel') return stored.map((item) => (isListed(item) ? decline(item) : item));
  return stored.filter((item) => !isListed(item));
}

/** The elements that come from the SCH alone. */
const SCH_ELEMENTS = ['identifier', 'appointmentType', 'minutesDuration'];

/** Appointment states that R4 (app-3) lets go without a start and an end. */
const UNTIMED = new Set(['proposed', 'cancelled', 'waitlist']);

/** SIU messages (scheduling), for Hl7Processor, in its transaction. */
@Injectable()
export class AppointmentMessages {
  constructor(
    private readonly fhir: FhirService,
    private readonly matches: CriteriaMatches,
    private readonly places: Places,
  ) {}

  /**
   * SIU: the SCH's appointment as an Appointment keyed by its filler id (SCH-2, else the
   * placer's SCH-1), with the patient, the people, equipment and places booked as its
   * participants. A booking, a rescheduling or a modification writes it; a cancellation,
   * discontinuation, deletion or no-show changes the status of a known one. What the message
   * does not speak of stays as stored (a cancellation without its times keeps them). A
   * message older than one already applied to the appointment leaves it as it is: a booking
   * replayed after its cancellation does not book it again.
   */
  async process(
    message: V2Message,
    event: SiuEvent,
    { sender, patientId, touched, clock }: PatientOfMessage,
  ): Promise<Touched> {
    const appointment = appointmentFromSiu(message, required(message, 'SCH'), sender);
    const criteria = byIdentifier(appointment.identifier);
    if (!criteria) {
      throw new Hl7ProcessingError('101', 'SCH-2 or SCH-1 (the appointment id) is required');
    }
    const match = await this.matches.uniqueMatch(HL7_USER, 'Appointment', criteria);
    if (!match && event.known) {
      throw new Hl7ProcessingError(
        '204',
        `${event.known} needs the id (SCH-2 or SCH-1) of a known appointment`,
      );
    }
    if (match && (await clock('Appointment', match))) {
      touched.entities.push(`Appointment/${match}`);
      return touched;
    }
    const current = match
      ? without((await this.fhir.read(HL7_USER, 'Appointment', match)).resource, 'meta')
      : undefined;
    // Every SIU message sends the whole SCH: what it maps is replaced, an SCH-9 in other units
    // included; times, notes and services, from segments a message may leave out, are kept.
    const kept = current && without(current, ...SCH_ELEMENTS);
    const status =
      event.status ??
      appointment.status ??
      (event.books ? 'booked' : (current?.['status'] as AppointmentStatus | undefined)) ??
      'booked';
    const basedOn = await this.orders(appointment, patientId);
    const services = this.services(appointment, event, current);
    const next: Record<string, unknown> = {
      ...(kept && without(kept, 'serviceType')),
      ...without(appointment.resource, 'serviceType'),
      ...(services.length > 0 ? { serviceType: services } : {}),
      status,
      participant: await this.participants(appointment, event, status, patientId, current, touched),
      ...(basedOn.length > 0 ? { basedOn } : {}),
    };
    if (!(next['start'] && next['end']) && !UNTIMED.has(status)) {
      throw new Hl7ProcessingError(
        '101',
        `A ${status} appointment needs its start and end (TQ1-7 and TQ1-8, or SCH-11) as times with a UTC offset`,
      );
    }
    let id = match;
    if (!id) {
      id = (await this.fhir.create(HL7_USER, 'Appointment', next)).id;
      await clock('Appointment', id);
    } else if (!isDeepStrictEqual({ ...next, id }, current)) {
      await this.fhir.update(HL7_USER, 'Appointment', id, { ...next, id });
    }
    touched.entities.push(`Appointment/${id}`);
    return touched;
  }

  /**
   * The patient, then the people, equipment and places the message books, each in its own
   * status if its segment gives one, else as the appointment's status has it. A message that
   * books none (a cancellation may send only the SCH) keeps those stored.
   */
  private async participants(
    appointment: AppointmentOfSiu,
    event: SiuEvent,
    status: AppointmentStatus,
    patientId: string,
    current: Record<string, unknown> | undefined,
    touched: Touched,
  ): Promise<Participant[]> {
    const booked: Participant[] = [...appointment.participants];
    for (const place of appointment.places) {
      const reference = `Location/${await this.places.of(place.chain)}`;
      touched.entities.push(reference);
      booked.push({
        actor: { reference, display: place.chain.at(-1)!.display },
        ...(place.status ? { status: place.status } : {}),
      });
    }
    const stored = ((current?.['participant'] as Participant[] | undefined) ?? []).filter(
      (participant) => !String(participant.actor['reference']).startsWith('Patient/'),
    );
    const patient: Participant = { actor: { reference: `Patient/${patientId}` } };
    if (event.resources) {
      // Those listed as the event has them, each in its own status (else the appointment's);
      // the others as stored.
      const listed = booked.map((participant) => ({
        ...participant,
        status: participant.status ?? participation(status),
      }));
      return [
        { ...patient, status: participation(status) },
        ...applied(
          stored,
          listed,
          event.resources,
          (a, b) => sameActor(a.actor, b.actor),
          (participant): Participant => ({ ...participant, status: 'declined' }),
        ),
      ];
    }
    // Those kept take the appointment's new state: a cancellation declines them all.
    const kept: Participant[] =
      booked.length > 0
        ? booked
        : stored.map(({ type, actor }): Participant => ({ ...(type ? { type } : {}), actor }));
    return [patient, ...kept].map((participant) => ({
      ...participant,
      status: participant.status ?? participation(status),
    }));
  }

  /**
   * The services (AIS) as the message lists them (the stored ones when it lists none), or, for
   * an event about some of them (S18 to S22), the stored ones with those added or removed (a
   * cancelled service is no longer one).
   */
  private services(
    appointment: AppointmentOfSiu,
    event: SiuEvent,
    current: Record<string, unknown> | undefined,
  ): unknown[] {
    const listed = (appointment.resource['serviceType'] as unknown[] | undefined) ?? [];
    const stored = (current?.['serviceType'] as unknown[] | undefined) ?? [];
    if (!event.resources) return listed.length > 0 ? listed : stored;
    return applied(
      stored,
      listed,
      event.resources === 'add' ? 'add' : 'delete',
      isDeepStrictEqual,
      (service) => service,
    );
  }

  /**
   * The orders (SCH-26, SCH-27) as references to the patient's ServiceRequests when known here
   * (see patientsOrder), else by their numbers.
   */
  private async orders(
    appointment: AppointmentOfSiu,
    patientId: string,
  ): Promise<Record<string, unknown>[]> {
    const basedOn: Record<string, unknown>[] = [];
    for (const identifier of appointment.orders) {
      const order = await patientsOrder(
        this.fhir,
        this.matches,
        byIdentifier(identifier)!,
        patientId,
      );
      basedOn.push(
        order ? { reference: `ServiceRequest/${order}` } : { type: 'ServiceRequest', identifier },
      );
    }
    return basedOn;
  }
}
