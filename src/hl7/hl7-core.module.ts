import { Module } from '@nestjs/common';
import { AuditModule } from '../audit/audit.module.js';
import { CryptoModule } from '../crypto/crypto.module.js';
import { DatabaseModule } from '../database/database.module.js';
import { FhirModule } from '../fhir/fhir.module.js';
import { Hl7InboundService } from './inbound/hl7-inbound.service.js';
import { InboundSender } from './inbound/inbound-sender.js';
import { AppointmentMessages } from './inbound/appointment-messages.js';
import { ChargeMessages } from './inbound/charge-messages.js';
import { DocumentMessages } from './inbound/document-messages.js';
import { Hl7Processor } from './inbound/hl7-processor.js';
import { OrderMessages } from './inbound/order-messages.js';
import { PharmacyMessages } from './inbound/pharmacy-messages.js';
import { PatientSegments } from './inbound/patient-segments.js';
import { Places } from './inbound/places.js';
import { ProblemMessages } from './inbound/problem-messages.js';
import { ResultMessages } from './inbound/result-messages.js';
import { VisitMoves } from './inbound/visit-moves.js';
import { Visits } from './inbound/visits.js';
import { MessagePatients } from './inbound/message-patients.js';
import { PatientLinks } from './inbound/patient-links.js';
import { PatientMerges } from './inbound/patient-merges.js';
import { VaccinationMessages } from './inbound/vaccination-messages.js';
import { Hl7OutboxRepository } from './outbound/hl7-outbox.repository.js';
import { Hl7Outbox } from './outbound/hl7-outbox.service.js';
import { Hl7EventClockRepository } from './store/hl7-event-clock.repository.js';
import { Hl7MessageRepository } from './store/hl7-message.repository.js';

/**
 * Storing and processing HL7 v2 messages, without any listener: what the service's channels
 * and the admin CLI (hl7:reprocess) share. With them, the outbox writes on Patient changes
 * (Hl7Outbox): a change the CLI makes (a message reprocessed, an import) is queued in its own
 * transaction as the service's are, and the service's worker sends it. Until 2026-12-07 they
 * were the service's only, and a feed change reprocessed from the CLI reached no destination.
 */
@Module({
  imports: [DatabaseModule, CryptoModule, AuditModule, FhirModule],
  providers: [
    Hl7MessageRepository,
    Hl7EventClockRepository,
    Hl7OutboxRepository,
    Hl7Outbox,
    Hl7Processor,
    DocumentMessages,
    AppointmentMessages,
    ProblemMessages,
    PharmacyMessages,
    OrderMessages,
    ChargeMessages,
    VisitMoves,
    Visits,
    MessagePatients,
    PatientMerges,
    PatientLinks,
    VaccinationMessages,
    ResultMessages,
    PatientSegments,
    Places,
    Hl7InboundService,
    InboundSender,
  ],
  exports: [Hl7MessageRepository, Hl7OutboxRepository, Hl7Outbox, Hl7InboundService, InboundSender],
})
export class Hl7CoreModule {}
