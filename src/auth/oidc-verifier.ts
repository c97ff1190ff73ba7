import { Injectable, Logger } from '@nestjs/common';
import {
  createRemoteJWKSet,
  decodeJwt,
  decodeProtectedHeader,
  jwtVerify,
  type JWTPayload,
} from 'jose';
import { AppConfig } from '../config/config.js';
import { authenticatedUrl } from '../common/http/loopback.js';
import type { AuthenticatedUser } from './authenticated-user.js';
import { smartContext } from './smart-scopes.js';
import { isRole, type Role } from './roles.js';

/** Asymmetric algorithms only: an HMAC "signature" keyed with a public key proves nothing. */
const ALGORITHMS = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
];

type RemoteKeys = ReturnType<typeof createRemoteJWKSet>;

/**
 * Tokens of an external OpenID Connect issuer (Keycloak…), when OIDC_ISSUER and OIDC_AUDIENCE
 * are set: verified against the issuer's JWKS (found by discovery unless OIDC_JWKS_URI is set,
 * fetched on first use and cached by jose), with the issuer's roles mapped to CareVault's.
 */
@Injectable()
export class OidcVerifier {
  private readonly logger = new Logger('Oidc');
  private keys: Promise<RemoteKeys> | undefined;

  constructor(private readonly config: AppConfig) {}

  /** Whether this token claims to come from the configured external issuer. */
  claims(token: string): boolean {
    const oidc = this.config.oidc;
    if (!oidc) {
      return false;
    }
    try {
      return decodeJwt(token).iss === oidc.issuer;
    } catch {
      return false;
    }
  }

  /** The user a valid external token names; throws on any defect. */
  async verify(token: string): Promise<AuthenticatedUser> {
    const oidc = this.config.oidc!;
    const header = decodeProtectedHeader(token);
    if (['jwk', 'jku', 'x5u', 'x5c', 'crit'].some((name) => name in header)) {
      throw new Error('Token headers may not carry keys');
    }
    const { payload } = await jwtVerify(token, await this.remoteKeys(), {
      issuer: oidc.issuer,
      audience: oidc.audience,
      algorithms: ALGORITHMS,
      requiredClaims: ['exp', 'sub'],
    });
    const roles = rolesAt(payload, oidc.rolesClaim)
      .map((role) => oidc.roleMap.get(role))
      .filter((role): role is Role => role !== undefined && isRole(role));
    const amr = Array.isArray(payload['amr'])
      ? payload['amr'].filter((method): method is string => typeof method === 'string')
      : [];
    // Only auth_time says when the user signed in: `iat` is renewed with every token the
    // provider issues on refresh, and would make an hours-old MFA look fresh for step-up.
    const authTime = typeof payload['auth_time'] === 'number' ? payload['auth_time'] : 0;
    return {
      // Prefixed so that an external subject can never equal a local user's id.
      id: `oidc:${payload.sub!}`,
      username:
        typeof payload['preferred_username'] === 'string'
          ? payload['preferred_username']
          : payload.sub!,
      roles: [...new Set(roles)],
      amr,
      authTime,
      ...smartContext(payload['scope'], payload['patient']),
    };
  }

  private remoteKeys(): Promise<RemoteKeys> {
    this.keys ??= this.discover().catch((error: unknown) => {
      // The issuer may be down now and up later: try discovery again next time. Its tokens are
      // 401 meanwhile; the reason (a jwks_uri not https, a certificate not trusted) is here.
      const cause = (error as { cause?: { code?: unknown } }).cause;
      this.logger.warn(
        { err: { message: (error as Error).message, code: cause?.code } },
        "OIDC discovery failed: the provider's tokens are refused",
      );
      this.keys = undefined;
      throw error;
    });
    return this.keys;
  }

  private async discover(): Promise<RemoteKeys> {
    const oidc = this.config.oidc!;
    let jwksUri = oidc.jwksUri;
    if (!jwksUri) {
      const url = `${oidc.issuer.replace(/\/$/, '')}/.well-known/openid-configuration`;
      const response = await fetch(url, { signal: AbortSignal.timeout(5000) });
      const document = (await response.json()) as { issuer?: unknown; jwks_uri?: unknown };
      if (
        !response.ok ||
        document.issuer !== oidc.issuer ||
        typeof document.jwks_uri !== 'string'
      ) {
        throw new Error('OIDC discovery failed: issuer mismatch or no jwks_uri');
      }
      // Keycloak behind a TLS proxy it was not told about advertises http:// URLs: keys
      // fetched in the clear could be anyone's (until 2026-12-06 they were taken).
      if (!authenticatedUrl(document.jwks_uri)) {
        throw new Error(`OIDC discovery failed: jwks_uri ${document.jwks_uri} is not https`);
      }
      jwksUri = document.jwks_uri;
      this.logger.log(`OIDC keys from ${jwksUri}`);
    }
    return createRemoteJWKSet(new URL(jwksUri));
  }
}

/** The string values at a dotted claim path (`realm_access.roles`). */
function rolesAt(payload: JWTPayload, path: string): string[] {
  let value: unknown = payload;
  for (const key of path.split('.')) {
    value =
      typeof value === 'object' && value !== null
        ? (value as Record<string, unknown>)[key]
        : undefined;
  }
  if (typeof value === 'string') {
    return value.split(/[\s,]+/).filter(Boolean);
  }
  return Array.isArray(value)
    ? value.filter((item): item is string => typeof item === 'string')
    : [];
}
