import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import type { FastifyReply, FastifyRequest, onSendHookHandler } from 'fastify';
import { securedResponse } from './security-headers.js';

type CorsOptions = NonNullable<Parameters<NestFastifyApplication['enableCors']>[0]>;

/**
 * The request headers a browser client may send: every one the API reads (conditional
 * requests, Prefer, If-None-Exist, X-Cascade, a Binary's X-Security-Context, and a request id
 * of the client's own to follow in logs and the audit trail). Accept is CORS-safelisted only
 * while its value is (`application/fhir+json; fhirVersion="4.0"`, quoted, is not), and a body
 * a browser app compresses comes with Content-Encoding: until 2026-12-07 a preflight naming
 * either was refused, and the browser never sent the request.
 */
const REQUEST_HEADERS = [
  'accept',
  'authorization',
  'content-encoding',
  'content-type',
  'if-match',
  'if-modified-since',
  'if-none-exist',
  'if-none-match',
  'prefer',
  'x-cascade',
  'x-request-id',
  'x-security-context',
];

/**
 * The response headers a browser client may read beyond the CORS-safelisted ones
 * (Content-Type, Last-Modified, Cache-Control…): versions and locations, a Bulk Data export's
 * status URL and progress, a Binary's security context, when to retry, why a token was
 * refused, the methods a path takes (a 405's Allow), and the request id.
 */
const RESPONSE_HEADERS = [
  'allow',
  'content-location',
  'etag',
  'location',
  'last-modified',
  'retry-after',
  'www-authenticate',
  'x-progress',
  'x-request-id',
  'x-security-context',
];

const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'];
const MAX_AGE_SECONDS = 600;

/**
 * CORS for the configured origins. An OPTIONS request that is not a preflight (no Origin or no
 * Access-Control-Request-Method: curl, a monitoring probe) is not CORS's to answer: @fastify/cors
 * would send a bare `400 Invalid Preflight Request` from its hook, before the request id,
 * the security headers and the exception filter, so it goes on as any other request does.
 */
export function corsOptions(origins: string[]): CorsOptions {
  const cors: CorsOptions = {
    origin: origins,
    methods: METHODS,
    allowedHeaders: REQUEST_HEADERS,
    exposedHeaders: RESPONSE_HEADERS,
    maxAge: MAX_AGE_SECONDS,
  };
  const notPreflight: CorsOptions = { origin: false };
  return {
    delegator: (request: FastifyRequest, callback) =>
      callback(null, request.method !== 'OPTIONS' || isPreflight(request) ? cors : notPreflight),
  };
}

function isPreflight(request: FastifyRequest): boolean {
  return (
    request.headers.origin !== undefined &&
    request.headers['access-control-request-method'] !== undefined
  );
}

/**
 * Nest's adapter runs @fastify/cors's request hook before any hook CareVault adds, and a
 * preflight is answered there: without this, its 204 had neither X-Request-Id nor the security
 * headers, which the hooks of createHttpAdapter and setupApp set on every other answer. Every
 * answer passes onSend; one those hooks never reached gets both here.
 */
export const preflightHeaders: onSendHookHandler = (request, reply, payload, done) => {
  if (!reply.hasHeader('x-request-id')) {
    void reply.header('x-request-id', request.id);
    // Helmet only sets headers and calls back at once; it has nothing to fail on.
    securedResponse(request.raw, reply.raw, () => undefined);
  }
  done(null, payload);
};

/**
 * CORS for what Fastify's router refuses before any hook runs, @fastify/cors's among them (a
 * path that is not valid percent-encoding, `/fhir/Patient/%FF`, or a segment past the length
 * limit: answerFrameworkError). Until 2026-12-07 neither its answer nor the preflight a browser
 * sends first (the request has a token) had CORS headers, so a browser app saw a network error
 * instead of the OperationOutcome. Sets the headers @fastify/cors would; a preflight is answered
 * here with its 204, and then true is returned.
 */
export function routerRefusalCors(
  origins: string[],
): (request: FastifyRequest, reply: FastifyReply) => boolean {
  return (request, reply) => {
    const origin = request.headers.origin;
    void reply.header('vary', 'Origin');
    if (origin !== undefined && origins.includes(origin)) {
      void reply
        .header('access-control-allow-origin', origin)
        .header('access-control-expose-headers', RESPONSE_HEADERS.join(', '));
    }
    if (request.method !== 'OPTIONS' || !isPreflight(request)) return false;
    void reply
      .header('access-control-allow-methods', METHODS.join(', '))
      .header('access-control-allow-headers', REQUEST_HEADERS.join(', '))
      .header('access-control-max-age', String(MAX_AGE_SECONDS))
      .code(204)
      .send();
    return true;
  };
}
