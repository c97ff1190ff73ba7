import { revIncludesByTarget } from './search/rev-includes.js';
import type { SearchDefinitions, SearchParam } from './search/search-definitions.js';

const INTERACTIONS = [
  'read',
  'vread',
  'update',
  'patch',
  'delete',
  'history-instance',
  'history-type',
  'create',
  'search-type',
];

/**
 * The audit trail is read-only and searched by its own parameters (GET /fhir/AuditEvent):
 * nobody writes AuditEvents through the API; the service records them itself. Never changed,
 * each has one version: its history and vread (src/audit/audit-event.controller.ts) are that
 * version, and a type history would be the search again, so it is not offered.
 */
const AUDIT_EVENT = {
  type: 'AuditEvent',
  profile: 'http://hl7.org/fhir/StructureDefinition/AuditEvent',
  documentation:
    'Read-only and never changed: each AuditEvent has one version (1). No type history: ' +
    'search AuditEvent, newest first.',
  interaction: [
    { code: 'read' },
    { code: 'vread' },
    { code: 'history-instance' },
    { code: 'search-type' },
  ],
  versioning: 'versioned',
  searchParam: [
    { name: 'patient', type: 'reference' },
    { name: 'agent', type: 'reference' },
    { name: 'agent-name', type: 'string' },
    { name: 'entity', type: 'reference' },
    { name: 'date', type: 'date' },
    { name: 'action', type: 'token' },
    { name: 'subtype', type: 'token' },
    { name: 'outcome', type: 'token' },
  ],
};

/** Bulk Data Access (src/fhir/export), whose clients look for its operations here. */
const BULK_DATA = 'http://hl7.org/fhir/uv/bulkdata';

/** Each type's operations besides $validate (ValueSet's and CodeSystem's: src/fhir/terminology). */
const TYPE_OPERATIONS: Record<
  string,
  { name: string; definition: string; documentation?: string }[]
> = {
  Patient: [
    {
      name: 'everything',
      definition: 'http://hl7.org/fhir/OperationDefinition/Patient-everything',
    },
    { name: 'match', definition: 'http://hl7.org/fhir/OperationDefinition/Patient-match' },
    { name: 'export', definition: `${BULK_DATA}/OperationDefinition/patient-export` },
    // Where it is served: until 2026-12-06 it was declared under AuditEvent, where it is not.
    {
      name: 'audit-trail',
      definition: 'urn:carevault:operation:Patient-audit-trail',
      documentation: 'GET /fhir/Patient/{id}/$audit-trail: the accounting of disclosures',
    },
  ],
  Group: [{ name: 'export', definition: `${BULK_DATA}/OperationDefinition/group-export` }],
  Observation: [
    { name: 'lastn', definition: 'http://hl7.org/fhir/OperationDefinition/Observation-lastn' },
  ],
  ValueSet: [
    { name: 'expand', definition: 'http://hl7.org/fhir/OperationDefinition/ValueSet-expand' },
    {
      name: 'validate-code',
      definition: 'http://hl7.org/fhir/OperationDefinition/ValueSet-validate-code',
    },
  ],
  CodeSystem: [
    { name: 'lookup', definition: 'http://hl7.org/fhir/OperationDefinition/CodeSystem-lookup' },
  ],
};

const US_CORE = 'http://hl7.org/fhir/us/core/StructureDefinition';
/** R4's vital signs profiles, which US Core 3.1.1 uses for vital signs. */
const VITAL_SIGNS = [
  'vitalsigns',
  'bp',
  'bodyheight',
  'bodyweight',
  'bodytemp',
  'heartrate',
  'resprate',
  'bmi',
  'headcircum',
];

/**
 * The US Core 3.1.1 profiles (the (g)(10) Single Patient API's), by type: CareVault serves
 * their interactions and every search US Core makes mandatory for them, and its server
 * CapabilityStatement SHALL declare them (`supportedProfile`; the US Core Patient profile and one
 * other at least). Declaring them checks nothing: resources are validated against R4 itself.
 */
const US_CORE_PROFILES: Record<string, string[]> = {
  AllergyIntolerance: [`${US_CORE}/us-core-allergyintolerance`],
  CarePlan: [`${US_CORE}/us-core-careplan`],
  CareTeam: [`${US_CORE}/us-core-careteam`],
  Condition: [`${US_CORE}/us-core-condition`],
  Device: [`${US_CORE}/us-core-implantable-device`],
  DiagnosticReport: [
    `${US_CORE}/us-core-diagnosticreport-lab`,
    `${US_CORE}/us-core-diagnosticreport-note`,
  ],
  DocumentReference: [`${US_CORE}/us-core-documentreference`],
  Encounter: [`${US_CORE}/us-core-encounter`],
  Goal: [`${US_CORE}/us-core-goal`],
  Immunization: [`${US_CORE}/us-core-immunization`],
  Location: [`${US_CORE}/us-core-location`],
  Medication: [`${US_CORE}/us-core-medication`],
  MedicationRequest: [`${US_CORE}/us-core-medicationrequest`],
  Observation: [
    `${US_CORE}/us-core-observation-lab`,
    `${US_CORE}/us-core-smokingstatus`,
    `${US_CORE}/us-core-pulse-oximetry`,
    `${US_CORE}/pediatric-bmi-for-age`,
    `${US_CORE}/pediatric-weight-for-height`,
    `${US_CORE}/head-occipital-frontal-circumference-percentile`,
    ...VITAL_SIGNS.map((name) => `http://hl7.org/fhir/StructureDefinition/${name}`),
  ],
  Organization: [`${US_CORE}/us-core-organization`],
  Patient: [`${US_CORE}/us-core-patient`],
  Practitioner: [`${US_CORE}/us-core-practitioner`],
  PractitionerRole: [`${US_CORE}/us-core-practitionerrole`],
  Procedure: [`${US_CORE}/us-core-procedure`],
  Provenance: [`${US_CORE}/us-core-provenance`],
};

export interface SoftwareInfo {
  name: string;
  version: string;
  baseUrl: string;
}

/** How clients get tokens: `rest.security`, from the SMART configuration (src/smart). */
export type RestSecurity = Record<string, unknown>;

/**
 * `rest.resource` of the CapabilityStatement: what each type supports, from the registry and
 * the search definitions. The same for every request, so it is built once (2,500 parameters).
 */
export function capabilityResources(
  resourceTypes: readonly string[],
  search: Pick<SearchDefinitions, 'paramsOf' | 'compositesOf'>,
  referentialIntegrity: boolean,
): object[] {
  const revIncludes = revIncludesByTarget(resourceTypes, search);
  return resourceTypes.map((type) =>
    type === AUDIT_EVENT.type
      ? AUDIT_EVENT
      : {
          type,
          profile: `http://hl7.org/fhir/StructureDefinition/${type}`,
          ...(US_CORE_PROFILES[type] ? { supportedProfile: US_CORE_PROFILES[type] } : {}),
          interaction: INTERACTIONS.map((code) => ({ code })),
          versioning: 'versioned-update',
          readHistory: true,
          updateCreate: true,
          // If-None-Match and If-Modified-Since on read and vread: 304 when current.
          conditionalRead: 'full-support',
          // If-None-Exist, PUT and DELETE with criteria: one match, under a lock.
          conditionalCreate: true,
          conditionalUpdate: true,
          conditionalDelete: 'single',
          // Literal and identifier references; with integrity on (reference-integrity.ts), a
          // relative one must name a stored resource, which cannot be deleted while referred to.
          // Not `local`: an absolute reference to another server is taken (README).
          referencePolicy: referentialIntegrity
            ? ['literal', 'logical', 'enforced']
            : ['literal', 'logical'],
          ...searchCapabilities(
            type,
            search.paramsOf(type),
            search.compositesOf(type),
            revIncludes.get(type) ?? [],
          ),
          operation: [
            ...(TYPE_OPERATIONS[type] ?? []),
            {
              name: 'validate',
              definition: 'http://hl7.org/fhir/OperationDefinition/Resource-validate',
            },
          ],
        },
  );
}

/** The answer of `$versions`: R4 only, which is also what a request without `fhirVersion` gets. */
export const FHIR_VERSIONS = {
  resourceType: 'Parameters',
  parameter: [
    { name: 'version', valueCode: '4.0' },
    { name: 'default', valueCode: '4.0' },
  ],
} as const;

/** The CapabilityStatement, generated from the registered resource types rather than written by hand. */
export function buildCapabilityStatement(
  resources: readonly object[],
  software: SoftwareInfo,
  security: RestSecurity,
): Record<string, unknown> {
  return {
    resourceType: 'CapabilityStatement',
    status: 'active',
    date: new Date().toISOString(),
    publisher: 'CareVault',
    kind: 'instance',
    software: { name: software.name, version: software.version },
    implementation: { description: 'CareVault FHIR R4 server', url: software.baseUrl },
    instantiates: [`${BULK_DATA}/CapabilityStatement/bulk-data`],
    fhirVersion: '4.0.1',
    format: ['application/fhir+json', 'json'],
    patchFormat: ['application/json-patch+json', 'application/fhir+json'],
    rest: [
      {
        mode: 'server',
        security,
        interaction: [{ code: 'transaction' }, { code: 'batch' }, { code: 'history-system' }],
        // Compartment search: GET /Patient/{id}/{type}.
        compartment: ['http://hl7.org/fhir/CompartmentDefinition/patient'],
        resource: resources,
        operation: [
          { name: 'export', definition: `${BULK_DATA}/OperationDefinition/export` },
          {
            name: 'versions',
            definition: 'http://hl7.org/fhir/OperationDefinition/CapabilityStatement-versions',
          },
        ],
      },
    ],
  };
}

const PHI_DOCUMENTATION =
  'Direct identifier: matched on keyed hashes only (exact, and prefixes of 3 to 20 characters ' +
  'for names and addresses, a shorter value matching whole parts); no :contains, no sorting';

/**
 * The search parameters a type is indexed on, the reference ones _include can follow, and those
 * of other types that _revinclude can follow back to it (rev-includes.ts, which a search obeys).
 */
function searchCapabilities(
  type: string,
  params: readonly SearchParam[],
  composites: readonly { code: string; definition?: string }[],
  revIncludes: readonly string[],
): {
  searchInclude?: string[];
  searchRevInclude?: string[];
  searchParam: Record<string, string>[];
} {
  const includes = params.filter((p) => p.type === 'reference').map((p) => `${type}:${p.code}`);
  return {
    // Left out for a type with no reference parameter: FHIR JSON has no empty arrays.
    ...(includes.length > 0 ? { searchInclude: includes } : {}),
    ...(revIncludes.length > 0 ? { searchRevInclude: [...revIncludes] } : {}),
    searchParam: [
      { name: '_id', type: 'token', definition: 'http://hl7.org/fhir/SearchParameter/Resource-id' },
      {
        name: '_lastUpdated',
        type: 'date',
        definition: 'http://hl7.org/fhir/SearchParameter/Resource-lastUpdated',
      },
      ...params.map((param) => ({
        name: param.code,
        type: param.type,
        ...(param.definition ? { definition: param.definition } : {}),
        ...(param.phi ? { documentation: PHI_DOCUMENTATION } : {}),
      })),
      ...composites.map((composite) => ({
        name: composite.code,
        type: 'composite',
        ...(composite.definition ? { definition: composite.definition } : {}),
      })),
    ],
  };
}
