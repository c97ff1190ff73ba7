import { Module } from '@nestjs/common';
import { AuditModule } from '../audit/audit.module.js';
import { CryptoModule } from '../crypto/crypto.module.js';
import { DatabaseModule } from '../database/database.module.js';
import { Hl7InboundService } from './inbound/hl7-inbound.service.js';
import { MllpListener } from './mllp/mllp-listener.js';
import { Hl7MessageRepository } from './store/hl7-message.repository.js';

/** HL7 v2 feeds: the MLLP listener, durable message storage and acknowledgements. */
@Module({
  imports: [DatabaseModule, CryptoModule, AuditModule],
  providers: [Hl7MessageRepository, Hl7InboundService, MllpListener],
  exports: [MllpListener],
})
export class Hl7Module {}
