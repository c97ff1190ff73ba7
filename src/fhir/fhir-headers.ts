import type { FastifyReply, FastifyRequest } from 'fastify';
import { operationOutcome, type OperationOutcome } from '../common/errors/operation-outcome.js';
import { FHIR_JSON } from '../common/http/media-types.js';
import { requestOrigin } from '../common/http/request-origin.js';
import type { FhirResource, StoredResource } from './fhir-types.js';

type PreferReturn = 'minimal' | 'representation' | 'OperationOutcome';

/** The FHIR base URL as the client addressed it, for Location and Bundle links. */
export function fhirBaseUrl(request: FastifyRequest): string {
  return `${requestOrigin(request)}/fhir`;
}

export function parsePreferReturn(prefer: string | undefined): PreferReturn {
  const match = /(?:^|[;,\s])return=(minimal|representation|OperationOutcome)\b/i.exec(
    prefer ?? '',
  );
  const value = match?.[1]?.toLowerCase();
  if (value === 'minimal') {
    return 'minimal';
  }
  return value === 'operationoutcome' ? 'OperationOutcome' : 'representation';
}

/**
 * Sets the version headers (ETag, Last-Modified, and Location for writes) and returns the body
 * that `Prefer: return=` asks for (nothing, the resource, or an OperationOutcome).
 */
export function sendStored(
  reply: FastifyReply,
  request: FastifyRequest,
  stored: StoredResource,
  options: { status: number; prefer?: string; location?: boolean },
): FhirResource | OperationOutcome | undefined {
  reply.status(options.status);
  reply.header('content-type', FHIR_JSON);
  reply.header('etag', `W/"${stored.versionId}"`);
  reply.header('last-modified', stored.lastUpdated.toUTCString());
  if (options.location) {
    reply.header(
      'location',
      `${fhirBaseUrl(request)}/${stored.resourceType}/${stored.id}/_history/${stored.versionId}`,
    );
  }
  switch (parsePreferReturn(options.prefer)) {
    case 'minimal':
      return undefined;
    case 'OperationOutcome':
      return operationOutcome([
        {
          severity: 'information',
          code: 'informational',
          diagnostics: `${stored.resourceType} version ${stored.versionId} stored`,
        },
      ]);
    case 'representation':
      return stored.resource;
  }
}

export function sendFhirJson<T>(reply: FastifyReply, body: T): T {
  reply.header('content-type', FHIR_JSON);
  return body;
}
