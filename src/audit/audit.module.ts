import { Global, Module } from '@nestjs/common';
import { CryptoModule } from '../crypto/crypto.module.js';
import { DatabaseModule } from '../database/database.module.js';
import { PageCursors } from '../fhir/cursor.js';
import { AuditCheckpoints } from './audit-checkpoints.js';
import { AuditContext } from './audit-context.js';
import { AuditEventController } from './audit-event.controller.js';
import { AuditEventService } from './audit-event.service.js';
import { AuditExport } from './audit-export.js';
import { AuditSigner } from './audit-signer.js';
import { AuditTrail } from './audit-trail.js';
import { AuditVerifier } from './audit-verifier.js';
import { AuditRepository } from './audit.repository.js';
import { RefusedRequests } from './refused-requests.js';

/**
 * The audit trail, for the service and the admin CLI. Global because every feature records
 * into it (what a request touched, who logged in), the way every feature logs.
 */
@Global()
@Module({
  imports: [CryptoModule, DatabaseModule],
  controllers: [AuditEventController],
  providers: [
    AuditContext,
    AuditRepository,
    AuditTrail,
    AuditSigner,
    AuditCheckpoints,
    AuditVerifier,
    AuditExport,
    AuditEventService,
    RefusedRequests,
    PageCursors,
  ],
  exports: [
    AuditContext,
    AuditTrail,
    AuditCheckpoints,
    AuditVerifier,
    AuditExport,
    AuditEventService,
    AuditSigner,
    RefusedRequests,
  ],
})
export class AuditModule {}
