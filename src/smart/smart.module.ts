import { Module } from '@nestjs/common';
import { SmartConfiguration } from './smart-configuration.js';
import { SmartController } from './smart.controller.js';

/** SMART on FHIR discovery, shared by its own route and the CapabilityStatement. */
@Module({
  controllers: [SmartController],
  providers: [SmartConfiguration],
  exports: [SmartConfiguration],
})
export class SmartModule {}
