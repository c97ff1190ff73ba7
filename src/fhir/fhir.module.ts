import { Module } from '@nestjs/common';
import { AccessModule } from '../access/access.module.js';
import { CryptoModule } from '../crypto/crypto.module.js';
import { DatabaseModule } from '../database/database.module.js';
import { SmartModule } from '../smart/smart.module.js';
import { BundleReads } from './bundle/bundle-reads.js';
import { BundleService } from './bundle/bundle.service.js';
import { CascadeDelete } from './cascade-delete.js';
import { FhirHistory } from './fhir-history.service.js';
import { FhirDefinitions } from './fhir-definitions.js';
import { ResourceValidator } from './resource-validator.js';
import { FHIR_REST_CONTROLLERS } from './fhir-controllers.js';
import { CriteriaLocks } from './criteria-locks.js';
import { FhirService } from './fhir.service.js';
import { FhirPatch } from './fhir-patch.service.js';
import { ConditionalWrites } from './conditional-writes.service.js';
import { CriteriaMatches } from './criteria-matches.service.js';
import { ResourceReferrers } from './resource-referrers.service.js';
import { WrittenVersions } from './written-versions.js';
import { SecurityContexts } from './security-contexts.js';
import { PatientMatchController } from './match/patient-match.controller.js';
import { PatientMatchService } from './match/patient-match.service.js';
import { TerminologyController } from './terminology/terminology.controller.js';
import { TerminologyService } from './terminology/terminology.service.js';
import { ValidateService } from './validate.service.js';
import { ImportService } from './import/import.service.js';
import { ReferenceIntegrity } from './reference-integrity.js';
import { RetiredPatients } from './retired-patients.js';
import { ResourceRepository } from './resource.repository.js';
import { ResourceWrites } from './resource-writes.js';
import { OwnFhirBase } from './own-fhir-base.js';
import { IndexExtractor } from './search/index-extractor.js';
import { SearchDefinitions } from './search/search-definitions.js';
import { EverythingService } from './search/everything.service.js';
import { ReindexService } from './search/reindex.service.js';
import { SearchIndexStateRepository } from './search/search-index-state.repository.js';
import { SearchIndexStatus } from './search/search-index-status.js';
import { SearchConditions } from './search/search-conditions.js';
import { SearchIndexRepository } from './search/search-index.repository.js';
import { SearchRepository } from './search/search.repository.js';
import { SearchIncludes } from './search/search-includes.js';
import { SearchService } from './search/search.service.js';
import { SearchState } from './search/search-state.js';
import { PageCursors } from './cursor.js';
import { SearchWhere } from './search/search-where.js';
import { LastNSearch } from './search/search-lastn.js';

@Module({
  imports: [AccessModule, CryptoModule, DatabaseModule, SmartModule],
  controllers: [...FHIR_REST_CONTROLLERS, PatientMatchController, TerminologyController],
  providers: [
    FhirDefinitions,
    ResourceValidator,
    FhirService,
    WrittenVersions,
    FhirPatch,
    CriteriaMatches,
    ConditionalWrites,
    ResourceReferrers,
    FhirHistory,
    CriteriaLocks,
    SecurityContexts,
    CascadeDelete,
    ResourceRepository,
    ResourceWrites,
    ReferenceIntegrity,
    RetiredPatients,
    SearchDefinitions,
    OwnFhirBase,
    IndexExtractor,
    SearchIndexRepository,
    SearchConditions,
    SearchRepository,
    SearchService,
    SearchWhere,
    LastNSearch,
    SearchIncludes,
    SearchState,
    PageCursors,
    BundleService,
    BundleReads,
    EverythingService,
    ReindexService,
    SearchIndexStateRepository,
    SearchIndexStatus,
    ImportService,
    ValidateService,
    PatientMatchService,
    TerminologyService,
  ],
  exports: [
    SecurityContexts,
    ReindexService,
    FhirService,
    CriteriaMatches,
    ResourceReferrers,
    SearchService,
    ResourceWrites,
    ImportService,
    ResourceRepository,
    FhirDefinitions,
  ],
})
export class FhirModule {}
