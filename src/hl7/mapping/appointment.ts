import type { V2Message, V2Segment } from '../message/v2-message.js';
import {
  annotationsOf,
  codeableConceptIn,
  codeableConceptOf,
  codingSystemOf,
  dateTimeOf,
  plusMinutes,
  practitionerOf,
  typedIdentifier,
  type Identifier,
} from './datatypes.js';
import { locationChain, type LocationLevel } from './encounter.js';
import { identifierOfEi } from './observation.js';
import { exactNumberOf } from './numeric.js';

export type AppointmentStatus =
  | 'pending'
  | 'waitlist'
  | 'booked'
  | 'checked-in'
  | 'fulfilled'
  | 'cancelled'
  | 'entered-in-error'
  | 'noshow';

export type ParticipantStatus = 'accepted' | 'declined' | 'tentative' | 'needs-action';

/**
 * Filler status codes (table 0278: SCH-25, and AIG-14, AIL-12, AIP-12 for one resource) to
 * Appointment.status, as the IG's ConceptMap table-hl70278-to-appointmentstatus has them. It
 * gives Dc (discontinued: no occurrence left) and Overbook no code; they are taken as
 * cancelled and booked. Blocked (a slot closed, not an appointment) has none.
 */
const FILLER_STATUS: Record<string, AppointmentStatus | undefined> = {
  PENDING: 'pending',
  WAITLIST: 'waitlist',
  BOOKED: 'booked',
  OVERBOOK: 'booked',
  STARTED: 'checked-in',
  COMPLETE: 'fulfilled',
  CANCELLED: 'cancelled',
  DC: 'cancelled',
  DELETED: 'entered-in-error',
  NOSHOW: 'noshow',
};

/** How a participant takes part in an appointment in that state. */
const PARTICIPATION: Record<AppointmentStatus, ParticipantStatus> = {
  pending: 'tentative',
  waitlist: 'tentative',
  booked: 'accepted',
  'checked-in': 'accepted',
  fulfilled: 'accepted',
  noshow: 'accepted',
  cancelled: 'declined',
  'entered-in-error': 'declined',
};

export function participation(status: AppointmentStatus): ParticipantStatus {
  return PARTICIPATION[status];
}

export function fillerStatus(code: string | null | undefined): AppointmentStatus | undefined {
  return FILLER_STATUS[code?.trim().toUpperCase() ?? ''];
}

export interface Participant {
  type?: Record<string, unknown>[];
  actor: Record<string, unknown>;
  /** The participant's own, when its segment gives one; else the appointment's decides. */
  status?: ParticipantStatus;
}

export interface AppointmentOfSiu {
  /** SCH-2, the filler's appointment id (the scheduling system sends SIU), else SCH-1. */
  identifier: Identifier | undefined;
  /** SCH-25's status, if it names one. */
  status: AppointmentStatus | undefined;
  /** The orders the appointment is for: placer (SCH-26) and filler (SCH-27) order numbers. */
  orders: Identifier[];
  /** The people and equipment booked (AIP, AIG); the patient and places are the caller's. */
  participants: Participant[];
  /** The places booked (AIL-3), as the Locations they name. */
  places: { chain: LocationLevel[]; status?: ParticipantStatus }[];
  /** Everything else of the Appointment: no status, participant or basedOn. */
  resource: Record<string, unknown>;
}

/**
 * An SIU message's SCH, with its TQ1, NTE, DG1 and resource segments (AIS, AIG, AIL, AIP), to
 * an Appointment (v2-to-FHIR SIU_S12, SCH[Appointment] and the AIS, AIG, AIL, AIP maps). Start
 * and end are instants: a time without a UTC offset is placed in HL7_TIME_ZONE, else not used.
 */
export function appointmentFromSiu(
  message: V2Message,
  sch: V2Segment,
  sender: string | undefined,
): AppointmentOfSiu {
  const placer = typedIdentifier(identifierOfEi(sch.repetitions(1)[0], sender), 'PLAC');
  const filler = typedIdentifier(identifierOfEi(sch.repetitions(2)[0], sender), 'FILL');
  const identifiers = [placer, filler].filter((id): id is Identifier => id !== undefined);
  const minutes = minutesOf(sch);
  const { start, end } = timesOf(message.first('TQ1'), sch, minutes);
  // SCH-7, the appointment reason (table 0276: ROUTINE, WALKIN, CHECKUP, FOLLOWUP, EMERGENCY),
  // is what R4's appointmentType is bound to (v2-0276).
  const type = codeableConceptIn(sch.repetitions(7)[0], '0276');
  const services = unique(
    message
      .all('AIS')
      .map((ais) => codeableConceptOf(ais.repetitions(3)[0]))
      .filter((service) => service !== undefined),
  );
  const comment = notesAfter(message, sch);
  // The diagnoses the appointment is for (SIU's DG1), as its coded reasons.
  const reasons = unique(
    message
      .all('DG1')
      .map((dg1) => codeableConceptOf(dg1.repetitions(3)[0]))
      .filter((reason) => reason !== undefined),
  );
  return {
    identifier: filler ?? placer,
    status: fillerStatus(sch.value(25)),
    orders: [...sch.repetitions(26), ...sch.repetitions(27)]
      .map((ei) => identifierOfEi(ei, sender))
      .filter((id): id is Identifier => id !== undefined),
    participants: uniqueBy(
      [
        ...message.all('AIP').map((aip) => personOf(aip, sender)),
        ...message.all('AIG').map(equipmentOf),
      ].filter((participant) => participant !== undefined),
      (participant) => participant.actor,
    ),
    places: uniqueBy(
      message
        .all('AIL')
        .map((ail) => ({ chain: locationChain(ail.repetitions(3)[0]), status: statusOf(ail, 12) }))
        .filter((place) => place.chain.length > 0),
      (place) => place.chain.at(-1)!.display,
    ),
    resource: {
      resourceType: 'Appointment',
      ...(identifiers.length > 0 ? { identifier: identifiers } : {}),
      ...(services.length > 0 ? { serviceType: services } : {}),
      ...(type ? { appointmentType: type } : {}),
      ...(reasons.length > 0 ? { reasonCode: reasons } : {}),
      ...(start && end ? { start, end } : {}),
      ...(minutes ? { minutesDuration: minutes } : {}),
      ...(comment ? { comment } : {}),
    },
  };
}

/** SCH-9 in the units of SCH-10, when they are minutes or hours. */
function minutesOf(sch: V2Segment): number | undefined {
  const amount = exactNumberOf(sch.value(9), 'SCH-9') ?? 0;
  if (!Number.isInteger(amount) || amount <= 0) return undefined;
  const unit = sch.value(10)?.trim().toLowerCase();
  if (unit === 'min' || unit === 'minutes') return amount;
  if (unit === 'h' || unit === 'hr' || unit === 'hours') return amount * 60;
  return undefined;
}

/**
 * TQ1-7 and TQ1-8 (v2.5 on), else SCH-11's start and end (TQ-4, TQ-5). An end not sent is the
 * start plus the duration; a start alone with no duration is not an appointment's time.
 */
function timesOf(
  tq1: V2Segment | undefined,
  sch: V2Segment,
  minutes: number | undefined,
): { start?: string; end?: string } {
  const zone = sch.timeZone;
  const start = instantOf(tq1?.value(7), zone) ?? instantOf(sch.value(11, 4), zone);
  const end =
    instantOf(tq1?.value(8), zone) ??
    instantOf(sch.value(11, 5), zone) ??
    (start && minutes ? plusMinutes(start, minutes, 'SCH-9') : undefined);
  return start && end ? { start, end } : {};
}

function instantOf(
  value: string | null | undefined,
  timeZone: string | undefined,
): string | undefined {
  const dateTime = dateTimeOf(value, timeZone);
  return dateTime?.includes('T') ? dateTime : undefined;
}

/** The NTE segments right after the SCH (and its TQ1), one line each. */
function notesAfter(message: V2Message, sch: V2Segment): string | undefined {
  const segments = message.segments();
  const notes: V2Segment[] = [];
  for (const segment of segments.slice(segments.indexOf(sch) + 1)) {
    if (segment.name === 'NTE') notes.push(segment);
    else if (segment.name !== 'TQ1') break;
  }
  const lines = annotationsOf(notes).map((note) => note.text);
  return lines.length > 0 ? lines.join('\n') : undefined;
}

function statusOf(segment: V2Segment, field: number): ParticipantStatus | undefined {
  const status = fillerStatus(segment.value(field));
  return status && participation(status);
}

/** AIP: the person booked (AIP-3) in their role (AIP-4), by identifier and name. */
function personOf(aip: V2Segment, sender: string | undefined): Participant | undefined {
  const person = practitionerOf(aip.repetitions(3)[0], sender);
  if (!person) return undefined;
  const role = codeableConceptOf(aip.repetitions(4)[0]);
  const status = statusOf(aip, 12);
  return {
    ...(role ? { type: [role] } : {}),
    actor: { type: 'Practitioner', ...person },
    ...(status ? { status } : {}),
  };
}

/** AIG: a general resource (AIG-3, a coded id: equipment, mostly) of its type (AIG-4). */
function equipmentOf(aig: V2Segment): Participant | undefined {
  const id = aig.repetitions(3)[0];
  const value = id?.value(1);
  const display = id?.value(2);
  if (!value && !display) return undefined;
  const system = codingSystemOf(id?.value(3));
  const type = codeableConceptOf(aig.repetitions(4)[0]);
  const status = statusOf(aig, 14);
  return {
    ...(type ? { type: [type] } : {}),
    actor: {
      ...(value ? { identifier: { ...(system ? { system } : {}), value } } : {}),
      ...(display ? { display } : {}),
    },
    ...(status ? { status } : {}),
  };
}

function unique<T>(items: T[]): T[] {
  return uniqueBy(items, (item) => item);
}

/** The items without repeats of what `key` says they are (segments often name a resource twice). */
function uniqueBy<T>(items: T[], key: (item: T) => unknown): T[] {
  const seen = new Set<string>();
  return items.filter((item) => {
    const id = JSON.stringify(key(item));
    if (seen.has(id)) return false;
    seen.add(id);
    return true;
  });
}
