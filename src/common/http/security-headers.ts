import type { IncomingMessage, ServerResponse } from 'node:http';
import helmet from 'helmet';

/**
 * Helmet's headers, built once: @fastify/helmet rebuilds helmet's middleware (parsing the
 * policy) on every request, which cost about 3 % of a read's CPU. setupApp runs it (as
 * securedResponse) on every request; answerFrameworkError on the requests Fastify's router
 * refuses before any hook runs.
 */
const securityHeaders = helmet({
  // The API answers JSON only; the policy lets Swagger UI's own scripts and styles run.
  contentSecurityPolicy: {
    directives: {
      defaultSrc: ["'self'"],
      imgSrc: ["'self'", 'data:'],
      styleSrc: ["'self'", "'unsafe-inline'"],
      scriptSrc: ["'self'"],
      objectSrc: ["'none'"],
      frameAncestors: ["'none'"],
      // Off: browsers would rewrite Swagger UI's calls to https on a plain-http server.
      upgradeInsecureRequests: null,
    },
  },
  hsts: { maxAge: 31_536_000, includeSubDomains: true },
  frameguard: { action: 'deny' },
  referrerPolicy: { policy: 'no-referrer' },
});

/**
 * Helmet's headers, and `Cache-Control: no-store` on every answer: they carry PHI or tokens,
 * which neither a browser's disk cache (a CORS app's) nor a proxy may keep (RFC 6749 5.1 for
 * tokens). Only a few routes said so until 2026-12-06; logins, refreshes and FHIR reads did not.
 */
export function securedResponse(
  request: IncomingMessage,
  response: ServerResponse,
  next: (error?: unknown) => void,
): void {
  response.setHeader('cache-control', 'no-store');
  securityHeaders(request, response, next);
}
