import { Module } from '@nestjs/common';
import { AuditModule } from '../audit/audit.module.js';
import { DatabaseModule } from '../database/database.module.js';
import { FhirModule } from '../fhir/fhir.module.js';
import { Hl7CoreModule } from './hl7-core.module.js';
import { Hl7Controller } from './hl7.controller.js';
import { Hl7Messages } from './hl7-messages.service.js';
import { MllpListener } from './mllp/mllp-listener.js';
import { Hl7OutboundWorker } from './outbound/hl7-outbound.worker.js';
import { Hl7OutboxController } from './outbound/hl7-outbox.controller.js';

/**
 * HL7 v2 feeds: the MLLP listener and the HTTP routes over the core's storage and processing
 * and its outbox (whose writes on Patient changes are the core's), and the outbound sender.
 */
@Module({
  imports: [Hl7CoreModule, AuditModule, DatabaseModule, FhirModule],
  controllers: [Hl7Controller, Hl7OutboxController],
  providers: [MllpListener, Hl7Messages, Hl7OutboundWorker],
  exports: [MllpListener],
})
export class Hl7Module {}
