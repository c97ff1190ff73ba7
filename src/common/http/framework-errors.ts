import { Logger } from '@nestjs/common';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { AppError } from '../errors/app-error.js';
import { securedResponse } from './security-headers.js';

const logger = new Logger('Http');

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * Sets the CORS headers of a router refusal, and answers it when it is a preflight (true
     * then); setupApp decorates the instance with it when CORS is on (routerRefusalCors).
     */
    routerRefusalCors?: (request: FastifyRequest, reply: FastifyReply) => boolean;
  }
}

/** Fastify's router refusals, in CareVault's words: nothing of the URL is quoted. */
function refusalOf(error: FastifyError): unknown {
  switch (error.code) {
    case 'FST_ERR_BAD_URL':
      return AppError.of(
        400,
        'structure',
        'The request URL is not valid percent-encoding: encode it as UTF-8',
      );
    case 'FST_ERR_MAX_PARAM_LENGTH':
      return AppError.of(414, 'too-long', 'A segment of the request URL is longer than allowed');
    default:
      // An async route constraint failing is a server fault: a 500, logged by the filter.
      return error;
  }
}

/**
 * Fastify's router refuses some URLs before any hook runs: a path that is not valid
 * percent-encoded UTF-8 (`/fhir/Patient/%FF`), a path parameter longer than maxParamLength.
 * Fastify would answer them itself, with its own JSON quoting the path (a name or an MRN, in
 * a URL) and without the headers the hooks set. They get those headers here, and then go to
 * the error handler Nest installed, so the AllExceptionsFilter answers them with an
 * OperationOutcome and records them, with no route (the URL is not kept), as any refused
 * request. With CORS on, they get its headers too, and a preflight of them its 204. The request log line is written here: Nest's middleware never sees the request.
 */
export function answerFrameworkError(
  error: FastifyError,
  request: FastifyRequest,
  reply: FastifyReply,
): void {
  void reply.header('x-request-id', request.id);
  // Helmet only sets headers and calls back at once; it has nothing to fail on.
  securedResponse(request.raw, reply.raw, () => undefined);
  // A browser's preflight of such a URL is let through, so that the request it precedes gets
  // the refusal below, which the app can read.
  if (request.server.routerRefusalCors?.(request, reply)) return;
  const refusal = refusalOf(error);
  logger.warn(
    {
      requestId: request.id,
      method: request.method,
      statusCode: refusal instanceof AppError ? refusal.status : 500,
      code: error.code,
    },
    'Request refused by the router',
  );
  request.server.errorHandler(refusal, request, reply);
}
