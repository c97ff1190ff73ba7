import { Injectable } from '@nestjs/common';
import type { AuthenticatedUser } from '../../auth/authenticated-user.js';
import { FhirService } from '../../fhir/fhir.service.js';
import { systemOfHd } from '../mapping/datatypes.js';
import { applyPatient, identifierCriteria, patientFromPid } from '../mapping/patient.js';
import { encounterFromPv1, type EncounterStatus } from '../mapping/encounter.js';
import { Hl7ProcessingError, Hl7RejectError, type Hl7Header } from '../message/hl7-header.js';
import type { V2Message, V2Segment } from '../message/v2-message.js';

/** Who writes what HL7 feeds bring: a system account with the integration role. */
const HL7_USER: AuthenticatedUser = {
  id: 'hl7',
  username: 'hl7',
  roles: ['integration'],
  amr: [],
  authTime: 0,
};

export interface Touched {
  entities: string[];
  patientIds: string[];
}

/** ADT events mapped, with the Encounter status each one means (none: patient data only). */
const ADT_EVENTS: Record<string, EncounterStatus | undefined> = {
  A01: 'in-progress',
  A04: 'in-progress',
  A05: 'planned',
  A03: 'finished',
  A08: undefined,
  A28: undefined,
  A31: undefined,
};

/**
 * Turns a stored message into FHIR resources through FhirService (validation, encryption,
 * search index), in the caller's transaction, so that the resources and the message's status
 * commit together.
 */
@Injectable()
export class Hl7Processor {
  constructor(private readonly fhir: FhirService) {}

  async process(message: V2Message, header: Hl7Header): Promise<Touched> {
    if (header.messageCode !== 'ADT') {
      throw new Hl7RejectError('200', 'Unsupported message type');
    }
    if (!Object.hasOwn(ADT_EVENTS, header.triggerEvent)) {
      throw new Hl7RejectError('201', 'Unsupported event code');
    }
    const pid = message.first('PID');
    if (!pid) {
      throw new Hl7ProcessingError('100', 'An ADT message needs a PID segment');
    }
    // Ids without an assigning authority are the sending facility's own (MSH-4, else MSH-3).
    const msh = message.first('MSH')!;
    const sender =
      systemOfHd(msh.value(4, 1), msh.value(4, 2), msh.value(4, 3)) ??
      systemOfHd(msh.value(3, 1), msh.value(3, 2), msh.value(3, 3));
    const patientId = await this.upsertPatient(pid, sender);
    const touched: Touched = { entities: [`Patient/${patientId}`], patientIds: [patientId] };
    const status = ADT_EVENTS[header.triggerEvent];
    const pv1 = message.first('PV1');
    if (status && pv1) {
      touched.entities.push(
        `Encounter/${await this.upsertEncounter(pv1, patientId, status, sender)}`,
      );
    }
    return touched;
  }

  /** The Patient matched on any PID-3 identifier (under the criteria's lock), or a new one. */
  private async upsertPatient(pid: V2Segment, sender: string | undefined): Promise<string> {
    const { identifiers, elements } = patientFromPid(pid, sender);
    const criteria = identifierCriteria(identifiers);
    if (!criteria) {
      throw new Hl7ProcessingError('101', 'PID-3 holds no identifier with an assigning authority');
    }
    const match = await this.fhir.uniqueMatch(HL7_USER, 'Patient', criteria);
    if (!match) {
      const created = await this.fhir.create(
        HL7_USER,
        'Patient',
        applyPatient(undefined, identifiers, elements),
      );
      return created.id;
    }
    const current = await this.fhir.read(HL7_USER, 'Patient', match);
    await this.fhir.update(HL7_USER, 'Patient', match, {
      ...applyPatient(current.resource, identifiers, elements),
      id: match,
    });
    return match;
  }

  /** The Encounter of the PV1-19 visit number, updated, or a new one. */
  private async upsertEncounter(
    pv1: V2Segment,
    patientId: string,
    status: EncounterStatus,
    sender: string | undefined,
  ): Promise<string> {
    const { identifier, resource } = encounterFromPv1(pv1, patientId, status, sender);
    const criteria = identifier ? identifierCriteria([identifier]) : undefined;
    const match = criteria
      ? await this.fhir.uniqueMatch(HL7_USER, 'Encounter', criteria)
      : undefined;
    if (!match) {
      if (status === 'finished') {
        throw new Hl7ProcessingError(
          '204',
          'A discharge needs the visit number (PV1-19) of a known encounter',
        );
      }
      return (await this.fhir.create(HL7_USER, 'Encounter', resource)).id;
    }
    const current = await this.fhir.read(HL7_USER, 'Encounter', match);
    const period = {
      ...(current.resource['period'] as object | undefined),
      ...(resource['period'] as object | undefined),
    };
    const { meta, ...stored } = current.resource;
    void meta; // the server's, rewritten on every version
    await this.fhir.update(HL7_USER, 'Encounter', match, {
      ...stored,
      ...resource,
      ...(Object.keys(period).length > 0 ? { period } : {}),
      id: match,
    });
    return match;
  }
}
