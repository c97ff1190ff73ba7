import helmet from 'helmet';

/**
 * Helmet's headers, built once: @fastify/helmet rebuilds helmet's middleware (parsing the
 * policy) on every request, which cost about 3 % of a read's CPU. setupApp runs it on every
 * request; answerFrameworkError on the requests Fastify's router refuses before any hook runs.
 */
export const securityHeaders = helmet({
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
