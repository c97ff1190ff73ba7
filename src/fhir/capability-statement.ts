const INTERACTIONS = [
  'read',
  'vread',
  'update',
  'patch',
  'delete',
  'history-instance',
  'history-type',
  'create',
];

export interface SoftwareInfo {
  name: string;
  version: string;
  baseUrl: string;
}

/** The CapabilityStatement, generated from the registered resource types rather than written by hand. */
export function buildCapabilityStatement(
  resourceTypes: readonly string[],
  software: SoftwareInfo,
): Record<string, unknown> {
  return {
    resourceType: 'CapabilityStatement',
    status: 'active',
    date: new Date().toISOString(),
    publisher: 'CareVault',
    kind: 'instance',
    software: { name: software.name, version: software.version },
    implementation: { description: 'CareVault FHIR R4 server', url: software.baseUrl },
    fhirVersion: '4.0.1',
    format: ['application/fhir+json', 'json'],
    patchFormat: ['application/json-patch+json'],
    rest: [
      {
        mode: 'server',
        resource: resourceTypes.map((type) => ({
          type,
          profile: `http://hl7.org/fhir/StructureDefinition/${type}`,
          interaction: INTERACTIONS.map((code) => ({ code })),
          versioning: 'versioned-update',
          readHistory: true,
          updateCreate: true,
          conditionalCreate: false,
          conditionalUpdate: false,
          conditionalDelete: 'not-supported',
        })),
      },
    ],
  };
}
