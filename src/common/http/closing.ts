import type { FastifyInstance } from 'fastify';
import { AppError } from '../errors/app-error.js';

const SHUTTING_DOWN = AppError.of(
  503,
  'transient',
  'The server is shutting down: send the request again, to another instance or in a moment',
);

/**
 * Requests that arrive while the server closes (on a busy keep-alive connection, or pipelined
 * behind a request still in flight) are refused with a 503 OperationOutcome, which the
 * exception filter answers and records as any refused request, with the request id, the
 * security headers and Retry-After. Fastify's own return503OnClosing (off in createHttpAdapter)
 * answered them before any hook ran, as `{"error":"Service Unavailable",…}` in plain JSON with
 * none of those headers. Fastify sets `Connection: close` on them itself.
 */
export function refuseWhileClosing(fastify: FastifyInstance): void {
  let closing = false;
  fastify.addHook('preClose', (done) => {
    closing = true;
    done();
  });
  fastify.addHook('onRequest', (_request, _reply, done) => {
    done(closing ? SHUTTING_DOWN : undefined);
  });
}
