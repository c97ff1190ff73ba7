import { Injectable } from '@nestjs/common';
import { CriteriaMatches } from '../../fhir/criteria-matches.service.js';
import { FhirService } from '../../fhir/fhir.service.js';
import { HL7_USER } from '../hl7-user.js';
import {
  encounterFromPv1,
  locationChain,
  type EncounterLocation,
  type EncounterStatus,
} from '../mapping/encounter.js';
import { Hl7ProcessingError } from '../message/hl7-header.js';
import type { V2Segment } from '../message/v2-message.js';
import { Hl7EventClockRepository } from '../store/hl7-event-clock.repository.js';
import { isStale, keep } from './event-order.js';
import { Places } from './places.js';
import { ambiguous, byIdentifier, without, writeOver, type Touched } from './processing.js';
import { atInstant } from './record-criteria.js';
import { isPatientsRecord } from './record-owners.js';

/**
 * What an ADT event does to the visit (PV1-19) it names: the Encounter status it means (the
 * v2-to-FHIR IG's ConceptMap table-hl70003-to-encounter-status where it has the event), whether
 * the visit must be known already (a discharge or a cancellation of one never seen is an
 * error, not a new Encounter), and whether it reopens a finished one. None: patient data only.
 */
export interface VisitEvent {
  status: EncounterStatus;
  /** What the event is, when it needs a known visit: for the error when it is not. */
  known?: string;
  reopens?: true;
  /**
   * An update of the visit's details (PV1-3, PV1-2…) that says nothing of its status: a known
   * visit keeps its own, and no Encounter is made for one not known (A08s are frequent, and
   * many carry no visit number).
   */
  updatesOnly?: true;
}

/** The visits (Encounters) ADT messages admit, move, update and discharge, for Hl7Processor. */
@Injectable()
export class Visits {
  constructor(
    private readonly fhir: FhirService,
    private readonly matches: CriteriaMatches,
    private readonly places: Places,
    private readonly clock: Hl7EventClockRepository,
  ) {}

  /**
   * The Encounter of the PV1-19 visit number, else of an unnumbered visit known again (see
   * unnumbered), updated as far as the event (at `at`, see eventInstant) is the newest news of
   * it; or a new one.
   */
  async upsert(
    pv1: V2Segment,
    pv2: V2Segment | undefined,
    patientId: string,
    event: VisitEvent,
    sender: string | undefined,
    touched: Touched,
    at?: Date,
  ): Promise<string | undefined> {
    const { identifier, resource } = encounterFromPv1(pv1, patientId, event.status, sender, pv2);
    const criteria = byIdentifier(identifier);
    const match = criteria
      ? await this.matches.uniqueMatch(HL7_USER, 'Encounter', criteria)
      : await this.unnumbered(resource, patientId);
    if (!match && event.updatesOnly) return undefined;
    if (!match && event.known) {
      throw new Hl7ProcessingError(
        '204',
        `${event.known} needs the visit number (PV1-19) of a known encounter`,
      );
    }
    // Read before anything is written: the visit must be this patient's (see isPatientsRecord).
    const current = match && (await this.fhir.read(HL7_USER, 'Encounter', match));
    if (current && !(await isPatientsRecord(this.fhir, current.resource, patientId))) {
      throw new Hl7ProcessingError(
        '205',
        "PV1-19 names another patient's visit: move the visit to this patient (A45) or correct the visit number",
      );
    }
    // A message older than news of the visit already applied (a queue replayed out of order)
    // writes nothing over it: an A01 sent again after the A03 does not reopen the stay. A
    // discharge is still taken after a later update of the visit's details, as its status
    // is newer than the visit's last status change.
    const clock =
      current && at
        ? await this.clock.advance('Encounter', current.id, sender, at, !event.updatesOnly)
        : undefined;
    const stale = isStale(at, clock?.detailsAt);
    if (
      current &&
      !stale &&
      event.status === 'cancelled' &&
      current.resource['status'] === 'finished'
    ) {
      // v2's A11 cancels an admission still open; one ended needs its discharge cancelled
      // (A13) first. Taken, it made a discharged stay `cancelled` as if it never happened.
      throw new Hl7ProcessingError(
        '207',
        `${event.known ?? 'A cancellation'} of a visit already discharged: cancel the discharge (A13) first`,
      );
    }
    if (current && stale) keep(touched, 'Encounter');
    if (current && stale && (event.updatesOnly || isStale(at, clock?.statusAt))) {
      return current.id;
    }
    const [location] = (resource['location'] as EncounterLocation[] | undefined) ?? [];
    if (location && !stale) {
      const chain = locationChain(pv1.repetitions(3)[0]);
      location.location.reference = `Location/${await this.places.of(chain)}`;
      touched.entities.push(location.location.reference);
    }
    if (!current) {
      const created = await this.fhir.create(HL7_USER, 'Encounter', resource);
      if (at) await this.clock.advance('Encounter', created.id, sender, at, !event.updatesOnly);
      return created.id;
    }
    // An A08 repeating what is stored makes no new version.
    return writeOver(
      this.fhir,
      'Encounter',
      visitAfter(current.resource, resource, event, stale),
      current.id,
    );
  }

  /**
   * A visit sent without a number (PV1-19), as some registration systems send them (samples
   * ADT01-28, ADT04-251): known again by the patient, its class and the instant it began
   * (PV1-44), so that a resend makes no second Encounter. Without a time of day nothing tells
   * two apart, and each is a new one; so is one that several stored visits could be.
   */
  private async unnumbered(
    resource: Record<string, unknown>,
    patientId: string,
  ): Promise<string | undefined> {
    const start = (resource['period'] as { start?: string } | undefined)?.start;
    if (!start?.includes('T')) return undefined;
    // Visits whose period holds that instant; the one that began then is the same visit.
    const found = await this.matches
      .uniqueMatch(
        HL7_USER,
        'Encounter',
        `subject=Patient/${patientId}&${atInstant('date', start)}`,
      )
      .catch(ambiguous);
    if (!found) return undefined;
    const stored = (await this.fhir.read(HL7_USER, 'Encounter', found)).resource;
    const classOf = (encounter: Record<string, unknown>) =>
      (encounter['class'] as { code?: string } | undefined)?.code;
    const same =
      stored['identifier'] === undefined &&
      (stored['period'] as { start?: string } | undefined)?.start === start &&
      classOf(stored) === classOf(resource);
    return same ? found : undefined;
  }
}

/**
 * The stored Encounter (`current`) after an event's (`incoming`, from its PV1, with its
 * location's reference set). An update (A08…) keeps the stored status; a cancelled discharge
 * (A13) drops the end. A `stale` event, older than details already applied but newer than the
 * last status change (a discharge received after a later A08), sets only the status and its
 * times, and fills in what the visit lacks: what the newer event said stays.
 */
export function visitAfter(
  current: Record<string, unknown>,
  incoming: Record<string, unknown>,
  event: VisitEvent,
  stale: boolean,
): Record<string, unknown> {
  const period: Record<string, unknown> = {
    ...(current['period'] as object | undefined),
    ...(incoming['period'] as object | undefined),
  };
  if (event.reopens) delete period['end'];
  const times = Object.keys(period).length > 0 ? { period } : {};
  if (stale) {
    const places = placesAfter(
      (current['location'] as EncounterLocation[] | undefined) ?? [],
      incoming['status'],
      false,
    );
    return {
      ...without(incoming, 'location'),
      ...without(current, 'meta'),
      status: incoming['status'],
      ...times,
      ...(places.length > 0 ? { location: places } : {}),
    };
  }
  const [location] = (incoming['location'] as EncounterLocation[] | undefined) ?? [];
  const status = event.updatesOnly ? current['status'] : incoming['status'];
  const locations = placesAfter(
    movedTo(current['location'] as EncounterLocation[] | undefined, location),
    status,
    !!location,
  );
  const next: Record<string, unknown> = {
    ...without(current, 'meta', 'period', 'location'),
    ...incoming,
    status,
    ...times,
    ...(locations.length > 0 ? { location: locations } : {}),
  };
  const hospitalization = next['hospitalization'] as Record<string, unknown> | undefined;
  const incomingStay = incoming['hospitalization'] as Record<string, unknown> | undefined;
  if (event.reopens && hospitalization && !incomingStay?.['dischargeDisposition']) {
    // A cancelled discharge takes back what the discharge said of where the patient went
    // (PV1-36), which stayed on the reopened stay until 2026-12-06.
    const kept = without(hospitalization, 'dischargeDisposition');
    if (Object.keys(kept).length > 0) next['hospitalization'] = kept;
    else delete next['hospitalization'];
  }
  return next;
}

/**
 * The locations of a visit of this status: where a finished or cancelled visit was is no
 * longer where the patient is (the last one stayed `active` after a discharge until
 * 2026-12-06), and a reopened one (A13) is at its last place again, unless PV1-3 named one.
 */
function placesAfter(
  locations: EncounterLocation[],
  status: unknown,
  named: boolean,
): EncounterLocation[] {
  if (status === 'finished' || status === 'cancelled') {
    return locations.map((entry) => ({ ...entry, status: 'completed' as const }));
  }
  const last = locations.at(-1);
  if (!named && last?.status === 'completed' && status === 'in-progress') {
    return [...locations.slice(0, -1), { ...last, status: 'active' as const }];
  }
  return locations;
}

/**
 * An Encounter's locations after a message naming `next` (PV1-3): where the patient was stays
 * in the list as completed, so a transfer keeps the way the patient went.
 */
function movedTo(
  previous: EncounterLocation[] | undefined,
  next: EncounterLocation | undefined,
): EncounterLocation[] {
  const locations = previous ?? [];
  if (!next) return locations;
  const display = next.location.display;
  return [
    ...locations
      .filter((entry) => entry.location.display !== display)
      .map((entry) => ({ ...entry, status: 'completed' as const })),
    next,
  ];
}
