import type { FastifyReply, FastifyRequest } from 'fastify';
import { AppError } from '../common/errors/app-error.js';
import { NativeContent } from '../common/http/native-content.js';
import { sendRead } from './fhir-headers.js';
import type { FhirResource, StoredResource } from './fhir-types.js';
import type { Subsets } from './subset.js';

/**
 * The resource a create or update body stands for: JSON as it came, or a Binary made from native
 * content, its securityContext from the `X-Security-Context` header (FHIR R4 http.html#binary).
 */
export function resourceBody(type: string, body: unknown, request: FastifyRequest): unknown {
  if (!(body instanceof NativeContent)) return body;
  if (type !== 'Binary') {
    throw AppError.of(415, 'not-supported', 'Only a Binary can be sent in its own format');
  }
  const context = request.headers['x-security-context'];
  const params = request.params as { id?: string };
  return {
    resourceType: 'Binary',
    ...(params.id !== undefined ? { id: params.id } : {}),
    contentType: body.contentType,
    ...(typeof context === 'string' && context !== ''
      ? { securityContext: { reference: context } }
      : {}),
    ...(body.data.length > 0 ? { data: body.data.toString('base64') } : {}),
  };
}

/**
 * A Binary read in its own format: its bytes with its contentType, the version headers of any
 * read (304 when unchanged) and its securityContext in `X-Security-Context`. The bytes are
 * whatever was stored, HTML or SVG too: a sandboxing CSP and nosniff keep a browser from
 * running them as a page of this origin.
 */
export function sendNativeBinary(
  reply: FastifyReply,
  request: FastifyRequest,
  stored: StoredResource,
  subsets: Subsets,
): Buffer | undefined {
  if (sendRead(reply, request, stored, subsets) === undefined) return undefined;
  const binary = stored.resource as FhirResource & {
    contentType?: string;
    data?: string;
    securityContext?: { reference?: string };
  };
  const context = binary.securityContext?.reference;
  if (context) void reply.header('x-security-context', context);
  void reply
    .header('content-type', binary.contentType ?? 'application/octet-stream')
    .header('content-security-policy', "sandbox; default-src 'none'")
    .header('x-content-type-options', 'nosniff');
  return Buffer.from(binary.data ?? '', 'base64');
}
