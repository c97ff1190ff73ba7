import { Module } from '@nestjs/common';
import { AuditModule } from '../audit/audit.module.js';
import { DatabaseModule } from '../database/database.module.js';
import { FhirModule } from '../fhir/fhir.module.js';
import { SubscriptionList } from './subscription-list.js';
import { SubscriptionNotifier } from './subscription-notifier.js';
import { SubscriptionStatuses } from './subscription-statuses.js';
import { SubscriptionsController } from './subscriptions.controller.js';
import { SubscriptionsCoreModule } from './subscriptions-core.module.js';

/** FHIR R4 Subscriptions: rest-hook notifications of changes that match a search. */
@Module({
  imports: [AuditModule, DatabaseModule, FhirModule, SubscriptionsCoreModule],
  controllers: [SubscriptionsController],
  providers: [SubscriptionList, SubscriptionNotifier, SubscriptionStatuses],
})
export class SubscriptionsModule {}
