import { Injectable } from '@nestjs/common';
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
import { Places } from './places.js';
import {
  ambiguous,
  atInstant,
  isVisitOf,
  byIdentifier,
  without,
  writeOver,
  type Touched,
} from './processing.js';

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
    private readonly places: Places,
  ) {}

  /**
   * The Encounter of the PV1-19 visit number, else of an unnumbered visit known again (see
   * unnumbered), updated; or a new one.
   */
  async upsert(
    pv1: V2Segment,
    pv2: V2Segment | undefined,
    patientId: string,
    event: VisitEvent,
    sender: string | undefined,
    touched: Touched,
  ): Promise<string | undefined> {
    const { identifier, resource } = encounterFromPv1(pv1, patientId, event.status, sender, pv2);
    const criteria = byIdentifier(identifier);
    const match = criteria
      ? await this.fhir.uniqueMatch(HL7_USER, 'Encounter', criteria)
      : await this.unnumbered(resource, patientId);
    if (!match && event.updatesOnly) return undefined;
    if (!match && event.known) {
      throw new Hl7ProcessingError(
        '204',
        `${event.known} needs the visit number (PV1-19) of a known encounter`,
      );
    }
    // Read before anything is written: the visit must be this patient's (see isVisitOf).
    const current = match && (await this.fhir.read(HL7_USER, 'Encounter', match));
    if (current && !(await isVisitOf(this.fhir, current.resource, patientId))) {
      throw new Hl7ProcessingError(
        '205',
        "PV1-19 names another patient's visit: move the visit to this patient (A45) or correct the visit number",
      );
    }
    const [location] = (resource['location'] as EncounterLocation[] | undefined) ?? [];
    if (location) {
      const chain = locationChain(pv1.repetitions(3)[0]);
      location.location.reference = `Location/${await this.places.of(chain)}`;
      touched.entities.push(location.location.reference);
    }
    if (!match || !current) {
      return (await this.fhir.create(HL7_USER, 'Encounter', resource)).id;
    }
    const period: Record<string, unknown> = {
      ...(current.resource['period'] as object | undefined),
      ...(resource['period'] as object | undefined),
    };
    // A cancelled discharge leaves the visit open again.
    if (event.reopens) delete period['end'];
    const locations = movedTo(
      current.resource['location'] as EncounterLocation[] | undefined,
      location,
    );
    // An A08 repeating what is stored makes no new version.
    return writeOver(
      this.fhir,
      'Encounter',
      {
        ...without(current.resource, 'meta', 'period', 'location'),
        ...resource,
        ...(event.updatesOnly ? { status: current.resource['status'] } : {}),
        ...(Object.keys(period).length > 0 ? { period } : {}),
        ...(locations.length > 0 ? { location: locations } : {}),
      },
      match,
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
    const found = await this.fhir
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
