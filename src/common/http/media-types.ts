export const FHIR_JSON = 'application/fhir+json; charset=utf-8';

/** Request bodies CareVault parses as JSON. */
export const JSON_MEDIA_TYPES = ['application/fhir+json', 'application/json-patch+json'];

/** HL7 v2 ER7 text, as POST /hl7/v2 takes it and answers its ACK. */
export const HL7_MEDIA_TYPE = 'x-application/hl7-v2+er7';
export const HL7_ROUTE = '/hl7/v2';
