import { Module } from '@nestjs/common';
import { AccessModule } from '../access/access.module.js';
import { DatabaseModule } from '../database/database.module.js';
import { FhirModule } from '../fhir/fhir.module.js';
import { SubscriptionRegistry } from './subscription-registry.js';
import { SubscriptionRepository } from './subscription.repository.js';

/**
 * What queues Subscription notifications: the active Subscriptions and the hook matching every
 * FHIR write against them. The service and the admin CLI (whose imports and HL7 reprocessing
 * write resources) both load it; only the service delivers (SubscriptionsModule).
 */
@Module({
  imports: [AccessModule, DatabaseModule, FhirModule],
  providers: [SubscriptionRepository, SubscriptionRegistry],
  exports: [SubscriptionRepository, SubscriptionRegistry],
})
export class SubscriptionsCoreModule {}
