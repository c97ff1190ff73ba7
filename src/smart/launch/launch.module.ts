import { Module } from '@nestjs/common';
import { AuthModule } from '../../auth/auth.module.js';
import { CryptoModule } from '../../crypto/crypto.module.js';
import { FhirModule } from '../../fhir/fhir.module.js';
import { AuthorizeController, LaunchController } from './authorize.controller.js';
import { AuthorizeService } from './authorize.service.js';
import { LaunchContexts } from './launch-contexts.js';

/**
 * SMART App Launch without an identity provider: CareVault's own authorization endpoint. Apart
 * from SmartModule (discovery), which the FHIR module needs, because choosing the patient in
 * context reads through the FHIR module.
 */
@Module({
  imports: [AuthModule, CryptoModule, FhirModule],
  controllers: [AuthorizeController, LaunchController],
  providers: [AuthorizeService, LaunchContexts],
})
export class LaunchModule {}
