import { FastifyAdapter } from '@nestjs/platform-fastify';
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { JSON_MEDIA_TYPES } from './media-types.js';

const REQUEST_ID = /^[A-Za-z0-9._-]{1,64}$/;

/**
 * The Fastify adapter with CareVault's HTTP rules: a body limit, FHIR JSON media types and a
 * request id on every request and response. Errors Fastify raises before a handler runs (body
 * too large, malformed JSON, unsupported media type) reach the global AllExceptionsFilter through
 * the error handler Nest installs.
 */
export function createHttpAdapter(bodyLimit: number): FastifyAdapter {
  const adapter = new FastifyAdapter({
    bodyLimit,
    logger: false,
    return503OnClosing: true,
    // An incoming X-Request-Id is kept when it is a plain token (it ends up in logs).
    genReqId: (request: IncomingMessage) => {
      const incoming = request.headers['x-request-id'];
      const id =
        typeof incoming === 'string' && REQUEST_ID.test(incoming) ? incoming : randomUUID();
      (request as IncomingMessage & { id?: string }).id = id;
      return id;
    },
  });
  const fastify = adapter.getInstance();
  // FHIR bodies are JSON; a text/plain body gets 415 rather than reaching a handler as a string.
  fastify.removeContentTypeParser('text/plain');
  fastify.addContentTypeParser(
    JSON_MEDIA_TYPES,
    { parseAs: 'string', bodyLimit },
    fastify.getDefaultJsonParser('error', 'error'),
  );
  fastify.addHook('onRequest', (request, reply, done) => {
    void reply.header('x-request-id', request.id);
    done();
  });
  return adapter;
}
