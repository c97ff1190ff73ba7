import type { FastifyRequest } from 'fastify';

/** The origin the client used (scheme and host), for the absolute URLs FHIR and SMART give. */
export function requestOrigin(request: FastifyRequest): string {
  return `${request.protocol}://${request.host}`;
}
