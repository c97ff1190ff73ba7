import { Module } from '@nestjs/common';
import { DatabaseModule } from '../database/database.module.js';
import { BreakGlassController } from './break-glass.controller.js';
import { BreakGlassRepository } from './break-glass.repository.js';
import { BreakGlassService } from './break-glass.service.js';
import { PatientCompartment } from './patient-compartment.js';
import { PatientRepository } from './patient.repository.js';
import { ResourceAccess } from './resource-access.js';

/** Content-based access: patient compartments, restricted records and break-glass. */
@Module({
  imports: [DatabaseModule],
  controllers: [BreakGlassController],
  providers: [
    PatientCompartment,
    PatientRepository,
    BreakGlassRepository,
    BreakGlassService,
    ResourceAccess,
  ],
  exports: [ResourceAccess, BreakGlassService, PatientCompartment, PatientRepository],
})
export class AccessModule {}
