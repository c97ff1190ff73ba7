import type { FastifyInstance } from 'fastify';
import { AppError } from '../errors/app-error.js';

/**
 * Refuses a request with more than one Content-Type header (RFC 9110 §8.3: one media type).
 * Node keeps the first and drops the others, where a proxy or gateway in front may have judged
 * the body by another: a Binary labelled `application/pdf` then `application/fhir+json` passed a
 * check of FHIR JSON and was stored as a PDF of the JSON text until 2026-12-07. As a request
 * with two Authorization headers carries no token (bearer-token.ts).
 */
export function refuseRepeatedContentType(fastify: FastifyInstance): void {
  fastify.addHook('onRequest', (request, _reply, done) => {
    const raw = request.raw.rawHeaders;
    let count = 0;
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i]!;
      if (name.length === 12 && name.toLowerCase() === 'content-type') count++;
    }
    done(
      count > 1
        ? AppError.of(
            400,
            'structure',
            `The request has ${count} Content-Type headers: send one, naming the body's media type`,
          )
        : undefined,
    );
  });
}
