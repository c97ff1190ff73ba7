/**
 * The FHIR paths a client reads before it has a token: the CapabilityStatement, the versions
 * served, and SMART discovery (the @Public() routes under /fhir; security-attacks' every-route
 * test holds the two lists together).
 */
export const PUBLIC_FHIR_PATHS: ReadonlySet<string> = new Set([
  '/fhir/metadata',
  '/fhir/$versions',
  '/fhir/.well-known/smart-configuration',
]);

/**
 * The first path segments under which every route but those of PUBLIC_PATHS takes a token:
 * FHIR, user administration, subscriptions, the HL7 v2 inbox and outbox, and the account and
 * SMART routes of /auth. The rest are public (/health, /metrics, /.well-known, /smart/style.json,
 * /docs) or no route at all. Security-attacks' every-route test fails a route that takes a token
 * outside these, so a new controller cannot be left out.
 */
export const AUTHENTICATED_PREFIXES: ReadonlySet<string> = new Set([
  'fhir',
  'admin',
  'subscriptions',
  'hl7',
  'auth',
]);

/**
 * The @Public() paths under AUTHENTICATED_PREFIXES: those read before there is a token (FHIR
 * discovery above), signing in, refreshing, exchanging a code and signing out, and the SMART
 * sign-in page and its form, which a browser reaches with no token at all.
 */
export const PUBLIC_PATHS: ReadonlySet<string> = new Set([
  ...PUBLIC_FHIR_PATHS,
  '/auth/login',
  '/auth/login/mfa',
  '/auth/refresh',
  '/auth/token',
  '/auth/logout',
  '/auth/authorize',
]);

/**
 * Whether a refusal made before the authentication guard ran must give way to a 401 when the
 * request has no valid token: one under an authenticated prefix, but for the public paths, with
 * a client error other than 401 itself. Hooks refuse an operation not offered (400), a method a
 * fixed path does not take (405), a format (406) or a body type (415) before the guard, and the
 * router a path it has no route for (404) or cannot decode (400), as Fastify does a body it
 * cannot parse (400, 415): each told whoever asked, without a token, which operations, methods
 * and formats a path offers, where a HIPAA reviewer expects the 401 that any other request
 * without one gets. Until 2026-12-07 this held under /fhir only: `DELETE /admin/users` was a
 * 405 naming GET. A 429 stays: the per-address rate limit refuses a flood without verifying its
 * tokens, as it must to stay cheap.
 */
export function awaitsAuthentication(url: string, status: number): boolean {
  if (status < 400 || status >= 500 || status === 401 || status === 429) return false;
  const path = decodedPath((url.split('?', 1)[0] ?? '').replace(/\/+$/, ''));
  const prefix = path.split('/', 2)[1] ?? '';
  return AUTHENTICATED_PREFIXES.has(prefix) && !PUBLIC_PATHS.has(path);
}

/** The path as the router reads it (`%24versions` is `$versions`); as sent if it cannot be. */
function decodedPath(path: string): string {
  try {
    return path
      .split('/')
      .map((segment) => decodeURIComponent(segment))
      .join('/');
  } catch {
    return path;
  }
}
