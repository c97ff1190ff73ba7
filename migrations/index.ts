import { CreateResourceStore1764000000000 } from './1764000000000-create-resource-store.js';
import { CreateUsers1764100000000 } from './1764100000000-create-users.js';
import { CreateBreakGlass1764200000000 } from './1764200000000-create-break-glass.js';
import { CreateSearchIndex1764300000000 } from './1764300000000-create-search-index.js';
import { CreateAuditTrail1764400000000 } from './1764400000000-create-audit-trail.js';
import { CoveringSearchIndexes1764500000000 } from './1764500000000-covering-search-indexes.js';
import { CreateHl7Message1764600000000 } from './1764600000000-create-hl7-message.js';
import { CreateHl7Outbox1764700000000 } from './1764700000000-create-hl7-outbox.js';
import { AuditChainAtCommit1764800000000 } from './1764800000000-audit-chain-at-commit.js';
import { ReferenceLookupById1764900000000 } from './1764900000000-reference-lookup-by-id.js';
import { CreateExportJobs1765000000000 } from './1765000000000-create-export-jobs.js';
import { ResourceLastUpdatedIndex1765100000000 } from './1765100000000-resource-last-updated-index.js';
import { ResourceHistoryKeysetIndexes1765200000000 } from './1765200000000-resource-history-keyset-indexes.js';
import { CreateBackendClients1765300000000 } from './1765300000000-create-backend-clients.js';
import { CreateSubscriptions1765400000000 } from './1765400000000-create-subscriptions.js';
import { CreateSmartApps1765500000000 } from './1765500000000-create-smart-apps.js';
import { SessionEpoch1765600000000 } from './1765600000000-session-epoch.js';
import { ExportJobAnyUser1765700000000 } from './1765700000000-export-job-any-user.js';
import { Hl7MessageIgnored1765800000000 } from './1765800000000-hl7-message-ignored.js';
import { SearchStringExact1765900000000 } from './1765900000000-search-string-exact.js';
import { SubscriptionFailure1766000000000 } from './1766000000000-subscription-failure.js';
import { SubscriptionEnd1766100000000 } from './1766100000000-subscription-end.js';
import { ExportJobToken1766200000000 } from './1766200000000-export-job-token.js';
import { SearchQuantityUnit1766300000000 } from './1766300000000-search-quantity-unit.js';
import { SubscriptionStatusAttemptedAt1766400000000 } from './1766400000000-subscription-status-attempted-at.js';
import { SearchSortByResource1766440000000 } from './1766440000000-search-sort-by-resource.js';
import { Hl7MessageUnreadResend1766800000000 } from './1766800000000-hl7-message-unread-resend.js';
import { ResourceHistoryMethod1766900000000 } from './1766900000000-resource-history-method.js';
import { SpentMfaToken1767000000000 } from './1767000000000-spent-mfa-token.js';
import { SearchIndexState1767160000000 } from './1767160000000-search-index-state.js';
import { SpentMfaTokenExpiry1767170000000 } from './1767170000000-spent-mfa-token-expiry.js';
import { Hl7MessagePeerCertificate1767180000000 } from './1767180000000-hl7-message-peer-certificate.js';
import { Hl7EventClock1767183000000 } from './1767183000000-hl7-event-clock.js';
import { Hl7MessageControlIdIndex1767190000000 } from './1767190000000-hl7-message-control-id-index.js';
import { Hl7OutboxFailedDeliveries1767200000000 } from './1767200000000-hl7-outbox-failed-deliveries.js';
import { Hl7MessageDismissed1767210000000 } from './1767210000000-hl7-message-dismissed.js';
import { AuditAppendCount1767220000000 } from './1767220000000-audit-append-count.js';
import { BlindIndexRoot1767236000000 } from './1767236000000-blind-index-root.js';
import { SearchIndexPublicHost1767237000000 } from './1767237000000-search-index-public-host.js';
import { BreakGlassSessionEpoch1767238000000 } from './1767238000000-break-glass-session-epoch.js';
import { ExportJobSessionEpoch1767239000000 } from './1767239000000-export-job-session-epoch.js';
import { AuditEventActorName1767240000000 } from './1767240000000-audit-event-actor-name.js';
import { SubscriptionNotificationSettledIndex1767241400000 } from './1767241400000-subscription-notification-settled-index.js';
import { SubscriptionStatusReason1767241500000 } from './1767241500000-subscription-status-reason.js';
import { Hl7OutboxSurvivor1767241600500 } from './1767241600500-hl7-outbox-survivor.js';
import { ExportJobClient1767241600600 } from './1767241600600-export-job-client.js';
import { AuditEventClient1767241600601 } from './1767241600601-audit-event-client.js';
import { ResourceHistoryPatient1767241601201 } from './1767241601201-resource-history-patient.js';
import { ResourceHistoryPatientBackfill1767241601202 } from './1767241601202-resource-history-patient-backfill.js';
import { ResourceHistoryPatientRecord1767241602402 } from './1767241602402-resource-history-patient-record.js';

/** Every migration, in order. A migration generated with `npm run migration:generate` is added here. */
export const MIGRATIONS = [
  CreateResourceStore1764000000000,
  CreateUsers1764100000000,
  CreateBreakGlass1764200000000,
  CreateSearchIndex1764300000000,
  CreateAuditTrail1764400000000,
  CoveringSearchIndexes1764500000000,
  CreateHl7Message1764600000000,
  CreateHl7Outbox1764700000000,
  AuditChainAtCommit1764800000000,
  ReferenceLookupById1764900000000,
  CreateExportJobs1765000000000,
  ResourceLastUpdatedIndex1765100000000,
  ResourceHistoryKeysetIndexes1765200000000,
  CreateBackendClients1765300000000,
  CreateSubscriptions1765400000000,
  CreateSmartApps1765500000000,
  SessionEpoch1765600000000,
  ExportJobAnyUser1765700000000,
  Hl7MessageIgnored1765800000000,
  SearchStringExact1765900000000,
  SubscriptionFailure1766000000000,
  SubscriptionEnd1766100000000,
  ExportJobToken1766200000000,
  SearchQuantityUnit1766300000000,
  SubscriptionStatusAttemptedAt1766400000000,
  SearchSortByResource1766440000000,
  Hl7MessageUnreadResend1766800000000,
  ResourceHistoryMethod1766900000000,
  SpentMfaToken1767000000000,
  SearchIndexState1767160000000,
  SpentMfaTokenExpiry1767170000000,
  Hl7MessagePeerCertificate1767180000000,
  Hl7EventClock1767183000000,
  Hl7MessageControlIdIndex1767190000000,
  Hl7OutboxFailedDeliveries1767200000000,
  Hl7MessageDismissed1767210000000,
  AuditAppendCount1767220000000,
  BlindIndexRoot1767236000000,
  SearchIndexPublicHost1767237000000,
  BreakGlassSessionEpoch1767238000000,
  ExportJobSessionEpoch1767239000000,
  AuditEventActorName1767240000000,
  SubscriptionNotificationSettledIndex1767241400000,
  SubscriptionStatusReason1767241500000,
  Hl7OutboxSurvivor1767241600500,
  ExportJobClient1767241600600,
  AuditEventClient1767241600601,
  ResourceHistoryPatient1767241601201,
  ResourceHistoryPatientBackfill1767241601202,
  ResourceHistoryPatientRecord1767241602402,
];
