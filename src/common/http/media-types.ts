export const FHIR_JSON = 'application/fhir+json; charset=utf-8';

/**
 * A query value with its spaces read back as pluses: `application/fhir+json` or a `+01:00`
 * offset written unencoded reach the server with a space for the plus (form decoding).
 */
export function unencodedPlus(value: string): string {
  return value.replace(/ /g, '+');
}

/** Request bodies CareVault parses as JSON. */
export const JSON_MEDIA_TYPES = ['application/fhir+json', 'application/json-patch+json'];

/** HL7 v2 ER7 text, as POST /hl7/v2 takes it and answers its ACK. */
export const HL7_MEDIA_TYPE = 'x-application/hl7-v2+er7';
export const HL7_ROUTE = '/hl7/v2';
