import { Module } from '@nestjs/common';
import { AccessModule } from '../../access/access.module.js';
import { CryptoModule } from '../../crypto/crypto.module.js';
import { FhirModule } from '../fhir.module.js';
import { ExportController } from './export.controller.js';
import { ExportRepository } from './export.repository.js';
import { ExportService } from './export.service.js';

/** Bulk Data export: part of the service only (the CLI has no use for export jobs). */
@Module({
  imports: [FhirModule, AccessModule, CryptoModule],
  controllers: [ExportController],
  providers: [ExportService, ExportRepository],
})
export class ExportModule {}
