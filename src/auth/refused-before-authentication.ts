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
 * Whether a refusal made before the authentication guard ran must give way to a 401 when the
 * request has no valid token: one under /fhir, but for the public paths, with a client error
 * other than 401 itself. Hooks refuse an operation not offered (400), a method a fixed path does
 * not take (405), a format (406) or a body type (415) before the guard, and the router a path
 * it has no route for (404) or cannot decode (400): each told whoever asked, without a token,
 * which operations, methods and formats a path offers, where a HIPAA reviewer expects the 401
 * that any other request without one gets. A 429 stays: the per-address rate limit refuses a
 * flood without verifying its tokens, as it must to stay cheap.
 */
export function awaitsAuthentication(url: string, status: number): boolean {
  if (status < 400 || status >= 500 || status === 401 || status === 429) return false;
  const path = (url.split('?', 1)[0] ?? '').replace(/\/+$/, '');
  if (path !== '/fhir' && !path.startsWith('/fhir/')) return false;
  return !PUBLIC_FHIR_PATHS.has(decodedPath(path));
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
