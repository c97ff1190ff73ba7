import { Module } from '@nestjs/common';
import { AuditModule } from '../audit/audit.module.js';
import { CryptoModule } from '../crypto/crypto.module.js';
import { DatabaseModule } from '../database/database.module.js';
import { FhirModule } from '../fhir/fhir.module.js';
import { Hl7Controller } from './hl7.controller.js';
import { Hl7InboundService } from './inbound/hl7-inbound.service.js';
import { Hl7Processor } from './inbound/hl7-processor.js';
import { MllpListener } from './mllp/mllp-listener.js';
import { Hl7MessageRepository } from './store/hl7-message.repository.js';

/** HL7 v2 feeds: the MLLP listener, durable message storage and acknowledgements. */
@Module({
  imports: [DatabaseModule, CryptoModule, AuditModule, FhirModule],
  controllers: [Hl7Controller],
  providers: [Hl7MessageRepository, Hl7Processor, Hl7InboundService, MllpListener],
  exports: [MllpListener],
})
export class Hl7Module {}
