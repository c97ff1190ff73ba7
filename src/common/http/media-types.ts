import type { FastifyRequest } from 'fastify';

const FHIR_JSON = 'application/fhir+json; charset=utf-8';
const PLAIN_JSON = 'application/json; charset=utf-8';

/** Requests whose Accept takes application/json over FHIR's own type (negotiateJson). */
const plainJson = new WeakSet<object>();

/** The request is to be answered as application/json: its Accept weighs that type higher. */
export function plainJsonAnswer(request: FastifyRequest): void {
  plainJson.add(request.raw);
}

/**
 * The Content-Type of a FHIR JSON answer (a resource, a Bundle, an OperationOutcome) to the
 * request: FHIR's own type, or application/json where Accept chose it. The bytes are the same.
 */
export function fhirJsonType(request: FastifyRequest): string {
  return plainJson.has(request.raw) ? PLAIN_JSON : FHIR_JSON;
}

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
