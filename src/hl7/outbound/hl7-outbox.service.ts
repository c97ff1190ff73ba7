import { Injectable, Logger, type OnModuleInit } from '@nestjs/common';
import { randomBytes } from 'node:crypto';
import { AppError } from '../../common/errors/app-error.js';
import { AppConfig } from '../../config/config.js';
import { isSender, type Hl7Destination } from '../../config/hl7-destinations.js';
import type { FhirResource } from '../../fhir/fhir-types.js';
import { ResourceRepository } from '../../fhir/resource.repository.js';
import { stored } from '../../fhir/resource-versions.js';
import { replacedBy } from '../../fhir/retired-patients.js';
import {
  ResourceWrites,
  type ResourceDeletion,
  type ResourceWrite,
} from '../../fhir/resource-writes.js';
import { HL7_USER } from '../hl7-user.js';
import { InboundSender } from '../inbound/inbound-sender.js';
import { outboxListQuery } from '../list-query.js';
import { adtOfPatient, type AdtEvent } from './patient-to-adt.js';
import type { Hl7OutboxEntity } from './hl7-outbox.entity.js';
import { Hl7OutboxRepository, type NewOutboxMessage } from './hl7-outbox.repository.js';

/** The message column of a row whose message could not be built (see `message`). */
const UNBUILT = '';

/**
 * Puts an ADT^A04 (created), ADT^A08 (updated), ADT^A40 (merged into another) or ADT^A29
 * (deleted) in the outbox for every configured destination when a Patient is written through
 * the FHIR API (for one an HL7 feed wrote, see destinationsFor), in the write's own
 * transaction: the message exists exactly when the change does. A message that cannot be built from the Patient is
 * stored dead with the reason instead: the clinical write must not fail for its copy elsewhere.
 */
@Injectable()
export class Hl7Outbox implements OnModuleInit {
  private readonly logger = new Logger('Hl7Outbound');
  /** Read once: every Patient write consults it. */
  private readonly settings: AppConfig['hl7Outbound'];

  constructor(
    config: AppConfig,
    private readonly writes: ResourceWrites,
    private readonly outbox: Hl7OutboxRepository,
    private readonly inbound: InboundSender,
    private readonly resources: ResourceRepository,
  ) {
    this.settings = config.hl7Outbound;
  }

  onModuleInit(): void {
    if (this.settings.destinations.length > 0) {
      this.writes.on('Patient', (write) => this.enqueue(write));
      this.writes.onDelete('Patient', (deletion) => this.enqueueDeletion(deletion));
    }
  }

  /**
   * The outbound messages the query asks for (`GET /hl7/outbox`), one more than `limit` when
   * there are more (the caller's next link), each as its summary.
   */
  async list(
    query: Record<string, unknown>,
  ): Promise<{ messages: Hl7OutboxSummary[]; limit: number }> {
    const { filter, limit } = outboxListQuery(query);
    return { messages: (await this.outbox.list(filter, limit + 1)).map(summary), limit };
  }

  /** Sends a dead message again, at its place in its destination's queue. */
  async resend(id: string): Promise<Hl7OutboxSummary> {
    const row = await this.outbox.findById(id);
    if (!row) throw AppError.notFound('No outbound message with this id');
    if (row.message === UNBUILT) {
      throw AppError.conflict(
        'This message could not be built, so there is nothing to send; the next change to the resource sends it whole',
      );
    }
    if (row.status !== 'dead') {
      throw AppError.conflict(`Only a dead message can be sent again; this one is ${row.status}`);
    }
    if (!(await this.outbox.requeue(id))) {
      throw AppError.conflict(
        'A later message about the same resource has been delivered to this destination: sent now, this one would overwrite newer data there',
      );
    }
    return summary((await this.outbox.findById(id))!);
  }

  private async enqueue({ user, resource, created }: ResourceWrite): Promise<void> {
    const destinations = this.destinationsFor(user);
    if (destinations.length === 0) return;
    const versionId = Number(resource.meta?.versionId);
    const merge = created ? undefined : await this.mergeOf(resource, versionId);
    if (merge) {
      await this.add(
        destinations,
        resource,
        'A40',
        versionId,
        (header) => adtOfPatient(merge.survivor, 'A40', header, merge.prior),
        merge.survivor.id,
      );
      return;
    }
    const event = created ? 'A04' : 'A08';
    await this.add(destinations, resource, event, versionId, (header) =>
      adtOfPatient(resource, event, header),
    );
  }

  /**
   * The merge this write makes, if it is one: the Patient gets a `replaced-by` link it did not
   * have (as an HL7 A40 or FHIR's $merge leave it). It goes as an ADT^A40 of the survivor, with
   * the merged patient's identifiers as they were (MRG-1), for the receivers to merge their two
   * records too: until 2026-12-07 an A08, which left them with two patients. A later correction
   * of the merged patient is an A08; a survivor not stored here leaves the merge an A08 too.
   */
  private async mergeOf(
    resource: FhirResource,
    versionId: number,
  ): Promise<{ survivor: FhirResource; prior: FhirResource } | undefined> {
    const survivorId = replacedBy(resource);
    if (!survivorId || !(versionId > 1)) return undefined;
    const before = await this.resources.findVersion('Patient', resource.id!, versionId - 1);
    if (!before || before.deleted) return undefined;
    const prior = stored(before).resource;
    if (replacedBy(prior)) return undefined;
    const survivor = await this.resources.findCurrent('Patient', survivorId);
    if (!survivor || survivor.deleted) return undefined;
    return { survivor: stored(survivor).resource, prior };
  }

  /**
   * Where a change goes: everywhere, when made through the FHIR API (or the admin CLI), but for
   * a bulk import's, which goes nowhere. What an HL7 feed wrote
   * came from a v2 system already, and sent back to it could loop feeds (each system sending
   * the other's update back): it goes only to the destinations HL7_OUTBOUND_SENDERS says are
   * other systems than its sender. Until 2026-12-07 it went nowhere, whatever the destination,
   * and a change from the admission system never reached the lab.
   */
  private destinationsFor(user: ResourceWrite['user']): Hl7Destination[] {
    const { destinations } = this.settings;
    // A bulk import (`cli import`) loads records kept elsewhere, often years of them: sent on,
    // each would reach every system as a new registration, a flood none of them asked for.
    if (user.loadsRecords) return [];
    if (user.id !== HL7_USER.id) return destinations;
    const sender = this.inbound.current;
    if (!sender) return [];
    return destinations.filter(
      (destination) =>
        destination.senders.length > 0 &&
        !destination.senders.some((configured) => isSender(configured, sender)),
    );
  }

  /**
   * ADT^A29 (delete person information: the patient and all of their data), with the PID of the
   * last version for the receiver to find them by. Not A23, which deletes one visit.
   */
  private async enqueueDeletion({ user, resource, versionId }: ResourceDeletion): Promise<void> {
    await this.add(this.destinationsFor(user), resource, 'A29', versionId, (header) =>
      adtOfPatient(resource, 'A29', header),
    );
  }

  /** One message per destination about `resource` (its row's), as `build` makes it. */
  private async add(
    destinations: Hl7Destination[],
    resource: ResourceWrite['resource'],
    event: AdtEvent,
    versionId: number,
    build: (header: MessageHeader) => string,
    survivorId?: string,
  ): Promise<void> {
    const { facility, processingId } = this.settings;
    const now = new Date();
    await this.outbox.add(
      destinations.map((destination) => {
        const controlId = `CV${randomBytes(9).toString('hex')}`;
        const row = {
          destination: destination.name,
          messageType: `ADT^${event}`,
          controlId,
          resourceType: resource.resourceType,
          resourceId: resource.id!,
          versionId,
          ...(survivorId === undefined ? {} : { survivorId }),
        };
        const header = {
          facility,
          processingId,
          receivingApplication: destination.receivingApplication,
          receivingFacility: destination.receivingFacility,
          controlId,
          now,
        };
        return { ...row, ...this.message(build, header, row) };
      }),
      now,
    );
  }

  /**
   * The message, or why there is none. This runs in the transaction of the FHIR write, which a
   * throw would roll back (a 500 for a Patient the API had accepted); an error's name is kept
   * and logged, never its text, which may quote the Patient.
   */
  private message(
    build: (header: MessageHeader) => string,
    header: MessageHeader,
    row: Pick<NewOutboxMessage, 'destination' | 'resourceId' | 'versionId'>,
  ): Pick<NewOutboxMessage, 'message' | 'failure'> {
    try {
      return { message: build(header) };
    } catch (error) {
      const failure = `Not built: ${error instanceof Error ? error.name : 'error'}`;
      this.logger.error({ ...row, reason: failure }, 'HL7 outbound message could not be built');
      return { message: UNBUILT, failure };
    }
  }
}

type MessageHeader = Parameters<typeof adtOfPatient>[2];

/** An outbound message as listed: where, what about, and how it went; never its content. */
export type Hl7OutboxSummary = Omit<Hl7OutboxEntity, 'message'>;

function summary({ message: _message, ...rest }: Hl7OutboxEntity): Hl7OutboxSummary {
  return rest;
}
