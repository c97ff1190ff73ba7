import { Module } from '@nestjs/common';
import { ComplianceRepository } from './compliance.repository.js';
import { ComplianceService } from './compliance.service.js';

/** The HIPAA safeguard report, for the admin CLI. */
@Module({
  providers: [ComplianceRepository, ComplianceService],
  exports: [ComplianceService],
})
export class ComplianceModule {}
