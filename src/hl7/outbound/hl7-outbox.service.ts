import { Injectable, type OnModuleInit } from '@nestjs/common';
import { randomBytes } from 'node:crypto';
import { AppError } from '../../common/errors/app-error.js';
import { AppConfig } from '../../config/config.js';
import { ResourceWrites, type ResourceWrite } from '../../fhir/resource-writes.js';
import { HL7_USER } from '../hl7-user.js';
import { adtOfPatient } from './patient-to-adt.js';
import type { Hl7OutboxEntity } from './hl7-outbox.entity.js';
import { Hl7OutboxRepository } from './hl7-outbox.repository.js';

/**
 * Puts an ADT^A04 (created) or ADT^A08 (updated) in the outbox for every configured destination
 * when a Patient is written through the FHIR API, in the write's own transaction: the message
 * exists exactly when the change does.
 */
@Injectable()
export class Hl7Outbox implements OnModuleInit {
  /** Read once: every Patient write consults it. */
  private readonly settings: AppConfig['hl7Outbound'];

  constructor(
    config: AppConfig,
    private readonly writes: ResourceWrites,
    private readonly outbox: Hl7OutboxRepository,
  ) {
    this.settings = config.hl7Outbound;
  }

  onModuleInit(): void {
    if (this.settings.destinations.length > 0) {
      this.writes.on('Patient', (write) => this.enqueue(write));
    }
  }

  /** Sends a dead message again, at its place in its destination's queue. */
  async resend(id: string): Promise<Hl7OutboxEntity> {
    if (await this.outbox.requeue(id)) return (await this.outbox.findById(id))!;
    const row = await this.outbox.findById(id);
    if (!row) throw AppError.notFound('No outbound message with this id');
    if (row.status !== 'dead') {
      throw AppError.conflict(`Only a dead message can be sent again; this one is ${row.status}`);
    }
    throw AppError.conflict(
      'A later message about the same resource has been delivered to this destination: sent now, this one would overwrite newer data there',
    );
  }

  private async enqueue({ user, resource, created }: ResourceWrite): Promise<void> {
    // What an HL7 feed wrote came from a v2 system already; echoing it out could loop feeds.
    if (user.id === HL7_USER.id) return;
    const { destinations, facility } = this.settings;
    const event = created ? 'A04' : 'A08';
    const now = new Date();
    await this.outbox.add(
      destinations.map((destination) => {
        const controlId = `CV${randomBytes(9).toString('hex')}`;
        return {
          destination: destination.name,
          messageType: `ADT^${event}`,
          controlId,
          resourceType: resource.resourceType,
          resourceId: resource.id!,
          versionId: Number(resource.meta?.versionId),
          message: adtOfPatient(resource, event, { facility, controlId, now }),
        };
      }),
      now,
    );
  }
}
