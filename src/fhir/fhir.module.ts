import { Module } from '@nestjs/common';
import { AccessModule } from '../access/access.module.js';
import { FhirDefinitions } from './fhir-definitions.js';
import { FhirController } from './fhir.controller.js';
import { FhirService } from './fhir.service.js';
import { ResourceRepository } from './resource.repository.js';

@Module({
  imports: [AccessModule],
  controllers: [FhirController],
  providers: [FhirDefinitions, FhirService, ResourceRepository],
})
export class FhirModule {}
