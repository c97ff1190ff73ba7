import { Module } from '@nestjs/common';
import { AuditModule } from '../audit/audit.module.js';
import { DatabaseModule } from '../database/database.module.js';
import { FhirModule } from '../fhir/fhir.module.js';
import { SubscriptionNotifier } from './subscription-notifier.js';
import { SubscriptionRegistry } from './subscription-registry.js';
import { SubscriptionRepository } from './subscription.repository.js';

/** FHIR R4 Subscriptions: rest-hook notifications of changes that match a search. */
@Module({
  imports: [AuditModule, DatabaseModule, FhirModule],
  providers: [SubscriptionRepository, SubscriptionRegistry, SubscriptionNotifier],
})
export class SubscriptionsModule {}
