import { Module } from '@nestjs/common';
import { AccessModule } from '../../access/access.module.js';
import { CryptoModule } from '../../crypto/crypto.module.js';
import { FhirModule } from '../fhir.module.js';
import { ExportController } from './export.controller.js';
import { ExportCriteria } from './export-criteria.js';
import { ExportRepository } from './export.repository.js';
import { ExportRunner } from './export-runner.js';
import { ExportService } from './export.service.js';

/** Bulk Data export: part of the service only (the CLI has no use for export jobs). */
@Module({
  imports: [FhirModule, AccessModule, CryptoModule],
  controllers: [ExportController],
  providers: [ExportService, ExportCriteria, ExportRunner, ExportRepository],
})
export class ExportModule {}
