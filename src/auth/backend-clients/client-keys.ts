import type { JWK } from 'jose';

/**
 * Signature algorithms a client may sign its assertion with. SMART Backend Services requires
 * RS384 and ES384; the other asymmetric ones are as safe. Symmetric (HS*) and `none` never.
 */
export const ASSERTION_ALGORITHMS = [
  'ES384',
  'RS384',
  'ES256',
  'ES512',
  'RS256',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
] as const;

const CURVES: Record<string, string> = { 'P-256': 'ES256', 'P-384': 'ES384', 'P-521': 'ES512' };
const MAX_KEYS = 10;
/** 2048 bits, base64url without padding. */
const MIN_RSA_MODULUS_CHARS = Math.ceil((2048 / 8) * (4 / 3));
/** Members that only a private or symmetric key has. */
const SECRET_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];

export interface ClientKeySet {
  keys: JWK[];
}

/**
 * A client's public keys as registered: a JWKS of EC (P-256, P-384, P-521) or RSA (2048 bits
 * at least) signing keys, each with a distinct `kid` (the assertion names its key by it).
 * Anything that would let the server hold a secret (a private or symmetric key) is refused
 * rather than stripped: whoever sent it has leaked it. Keeps the public members only.
 */
export function clientKeySet(value: unknown): ClientKeySet {
  const keys = (value as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(keys) || keys.length === 0 || keys.length > MAX_KEYS) {
    throw new Error(`a JWKS holds 1 to ${MAX_KEYS} keys in "keys"`);
  }
  const kids = new Set<string>();
  const cleaned = keys.map((key: unknown, index) => {
    const jwk = (key ?? {}) as Record<string, unknown>;
    const where = `key ${index + 1}`;
    const secret = SECRET_MEMBERS.find((member) => member in jwk);
    if (secret) {
      throw new Error(`${where} has "${secret}": register public keys only, and replace this key`);
    }
    const { kid, kty, use } = jwk;
    const alg = jwk['alg'];
    if (alg !== undefined && typeof alg !== 'string') {
      throw new Error(`${where}: "alg" must be a string`);
    }
    if (typeof kid !== 'string' || kid.length === 0 || kid.length > 200) {
      throw new Error(`${where} needs a "kid"`);
    }
    if (kids.has(kid)) throw new Error(`${where}: "kid" ${kid} is used twice`);
    kids.add(kid);
    if (use !== undefined && use !== 'sig') throw new Error(`${where}: "use" must be "sig"`);
    if (kty === 'EC') {
      const { crv, x, y } = jwk;
      const curveAlg = typeof crv === 'string' ? CURVES[crv] : undefined;
      if (typeof crv !== 'string' || !curveAlg || typeof x !== 'string' || typeof y !== 'string') {
        throw new Error(`${where}: an EC key needs "crv" P-256, P-384 or P-521, "x" and "y"`);
      }
      if (alg !== undefined && alg !== curveAlg) {
        throw new Error(`${where}: "alg" ${alg} does not fit curve ${crv}`);
      }
      return { kty, kid, crv, x, y, ...(alg ? { alg } : {}), ...(use ? { use } : {}) };
    }
    if (kty === 'RSA') {
      const { n, e } = jwk;
      if (typeof n !== 'string' || typeof e !== 'string') {
        throw new Error(`${where}: an RSA key needs "n" and "e"`);
      }
      if (n.length < MIN_RSA_MODULUS_CHARS) {
        throw new Error(`${where}: an RSA key needs 2048 bits at least`);
      }
      if (alg !== undefined && !/^(RS|PS)(256|384|512)$/.test(alg)) {
        throw new Error(`${where}: "alg" ${alg} is not an RSA signature algorithm`);
      }
      return { kty, kid, n, e, ...(alg ? { alg } : {}), ...(use ? { use } : {}) };
    }
    throw new Error(`${where}: "kty" must be EC or RSA`);
  });
  return { keys: cleaned };
}

/** The algorithm a registered key signs with: its `alg`, else its curve's, else RS256 for RSA. */
export function keyAlgorithm(key: JWK): string {
  return key.alg ?? (key.kty === 'EC' ? CURVES[key.crv ?? '']! : 'RS256');
}
