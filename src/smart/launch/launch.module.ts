import { Module } from '@nestjs/common';
import { AuthModule } from '../../auth/auth.module.js';
import { CryptoModule } from '../../crypto/crypto.module.js';
import { FhirModule } from '../../fhir/fhir.module.js';
import { AuthorizeController } from './authorize.controller.js';
import { AuthorizeService } from './authorize.service.js';

/**
 * SMART App Launch without an identity provider: CareVault's own authorization endpoint. Apart
 * from SmartModule (discovery), which the FHIR module needs, because choosing the patient in
 * context reads through the FHIR module.
 */
@Module({
  imports: [AuthModule, CryptoModule, FhirModule],
  controllers: [AuthorizeController],
  providers: [AuthorizeService],
})
export class LaunchModule {}
