import type { FastifyInstance } from 'fastify';
import { AppError } from '../errors/app-error.js';

/**
 * Headers a request gives once: Content-Type (RFC 9110 §8.3, one media type) and FHIR's
 * If-None-Exist (one query). Node keeps the first Content-Type and drops the others, where a
 * proxy or gateway in front may have judged the body by another: a Binary labelled
 * `application/pdf` then `application/fhir+json` passed a check of FHIR JSON and was stored as a
 * PDF of the JSON text. Two If-None-Exist it joins with a comma, which a search reads as "or":
 * a create whose second header named the Patient sent was answered 200 with the Patient the first
 * named, and nothing created. Each until 2026-12-07. As a request with two Authorization headers
 * carries no token (bearer-token.ts).
 */
const ONCE = ['content-type', 'if-none-exist'];

/** Refuses with 400 a request that gives a header of ONCE more than once. */
export function refuseRepeatedHeaders(fastify: FastifyInstance): void {
  fastify.addHook('onRequest', (request, _reply, done) => {
    const raw = request.raw.rawHeaders;
    const seen = new Set<string>();
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i]!.toLowerCase();
      if (!ONCE.includes(name)) continue;
      if (seen.has(name)) {
        done(
          AppError.of(400, 'structure', `The request has more than one ${raw[i]} header: send one`),
        );
        return;
      }
      seen.add(name);
    }
    done();
  });
}
