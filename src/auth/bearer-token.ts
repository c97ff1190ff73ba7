import type { FastifyRequest } from 'fastify';

/**
 * The access token of a request, if it carries one as `Authorization: Bearer` (RFC 6750 2.1:
 * the scheme, one or more spaces, the token). The one reading of the header: passport-jwt's
 * own, looser one (`Bearer  <token> x`) found a token where this found none, and the guard
 * then verified it without asking whether its session, account or app had ended since.
 */
export function bearerToken(request: FastifyRequest): string | undefined {
  return /^Bearer +(\S+)$/i.exec(request.headers.authorization ?? '')?.[1];
}
