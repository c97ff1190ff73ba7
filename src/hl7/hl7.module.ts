import { Module } from '@nestjs/common';
import { Hl7CoreModule } from './hl7-core.module.js';
import { Hl7Controller } from './hl7.controller.js';
import { MllpListener } from './mllp/mllp-listener.js';

/** HL7 v2 feeds: the MLLP listener and the HTTP routes, over the core's storage and processing. */
@Module({
  imports: [Hl7CoreModule],
  controllers: [Hl7Controller],
  providers: [MllpListener],
  exports: [MllpListener],
})
export class Hl7Module {}
