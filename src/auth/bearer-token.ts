import type { FastifyRequest } from 'fastify';

/**
 * The access token of a request, if it carries one as `Authorization: Bearer` (RFC 6750 2.1:
 * the scheme, one or more spaces, the token). The one reading of the header: passport-jwt's
 * own, looser one (`Bearer  <token> x`) found a token where this found none, and the guard
 * then verified it without asking whether its session, account or app had ended since.
 * A request with two Authorization headers carries none: Node keeps the first, where a proxy
 * in front may have judged the other (RFC 9110 allows one).
 */
export function bearerToken(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (header === undefined || authorizationHeaders(request.raw.rawHeaders) > 1) return undefined;
  return /^Bearer +(\S+)$/i.exec(header)?.[1];
}

function authorizationHeaders(raw: readonly string[]): number {
  let count = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length === 13 && name.toLowerCase() === 'authorization') count++;
  }
  return count;
}
