export const FHIR_JSON = 'application/fhir+json; charset=utf-8';

/** Request bodies CareVault parses as JSON. */
export const JSON_MEDIA_TYPES = ['application/fhir+json', 'application/json-patch+json'];
