import { generateKeyPairSync, randomUUID, type KeyObject } from 'node:crypto';
import { calculateJwkThumbprint, decodeProtectedHeader, exportJWK, SignJWT } from 'jose';
import { Strategy } from 'passport-jwt';
import { userOfClaims } from '../../src/auth/access-token-claims.js';
import type { Role } from '../../src/auth/roles.js';
import { VerifiedTokens } from '../../src/auth/verified-tokens.js';

const ALGORITHM = 'ES256';
const ACCESS_TOKEN_TYPE = 'at+jwt';
/** CareVault's defaults (JWT_ISSUER, JWT_AUDIENCE), so tokens are the same size. */
const ISSUER = 'carevault';
const AUDIENCE = 'carevault-api';
/** Long enough for a whole `npm run bench` (CareVault's own tokens live ACCESS_TOKEN_TTL). */
const TOKEN_TTL = '24h';

export interface BaselineUser {
  id: string;
  username: string;
  roles: Role[];
}

type JwtVerifier = (
  token: string,
  key: KeyObject,
  options: { audience: string; issuer: string; algorithms: string[]; ignoreExpiration: boolean },
  done: (error: Error | null, payload?: Record<string, unknown>) => void,
) => void;

/**
 * What passport-jwt verifies a token with (jsonwebtoken's `verify`), taken from passport-jwt
 * itself: the library and its cost are CareVault's, without passport around it.
 */
const verifyJwt = (Strategy as unknown as { JwtVerifier: JwtVerifier }).JwtVerifier;

/**
 * Bearer tokens as CareVault checks them (JwtAuthGuard, JwtStrategy, SigningKeys):
 * a token verified before is taken from the same cache; otherwise
 * ES256 under one in-memory P-256 key, the header checked first (algorithm, type, kid, no
 * embedded keys), then signature, issuer, audience and expiry, then the claims' shapes.
 * No database lookup: CareVault makes none per request either.
 */
export class BaselineAuth {
  /** JwtAuthGuard's cache of verified tokens: CareVault checks a token's signature once. */
  private readonly verified = new VerifiedTokens();

  private constructor(
    private readonly kid: string,
    private readonly privateKey: KeyObject,
    private readonly publicKey: KeyObject,
  ) {}

  static async create(): Promise<BaselineAuth> {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const kid = await calculateJwkThumbprint(await exportJWK(publicKey));
    return new BaselineAuth(kid, privateKey, publicKey);
  }

  /** An access token with CareVault's claims (TokenService.accessToken). */
  token(user: BaselineUser): Promise<string> {
    return new SignJWT({
      username: user.username,
      roles: user.roles,
      amr: ['pwd'],
      auth_time: Math.floor(Date.now() / 1000),
    })
      .setProtectedHeader({ alg: ALGORITHM, typ: ACCESS_TOKEN_TYPE, kid: this.kid })
      .setIssuer(ISSUER)
      .setAudience(AUDIENCE)
      .setSubject(user.id)
      .setJti(randomUUID())
      .setIssuedAt()
      .setExpirationTime(TOKEN_TTL)
      .sign(this.privateKey);
  }

  /** The user of a valid `Authorization: Bearer` header; undefined for anything else. */
  verify(authorization: string | undefined): Promise<BaselineUser | undefined> {
    const token = /^Bearer (\S+)$/i.exec(authorization ?? '')?.[1];
    // One key, never rotated: the accepted keys' generation is always 0.
    const known = token ? this.verified.get(token, 0) : undefined;
    if (known) {
      return Promise.resolve(known);
    }
    if (!token || !this.headerIsOurs(token)) {
      return Promise.resolve(undefined);
    }
    return new Promise((resolve) => {
      verifyJwt(
        token,
        this.publicKey,
        { audience: AUDIENCE, issuer: ISSUER, algorithms: [ALGORITHM], ignoreExpiration: false },
        (error, payload) => {
          const user = error || !payload ? undefined : userOfClaims(payload);
          if (user) this.verified.remember(token, user);
          resolve(user);
        },
      );
    });
  }

  private headerIsOurs(token: string): boolean {
    try {
      const header = decodeProtectedHeader(token);
      return (
        header.alg === ALGORITHM &&
        header.typ === ACCESS_TOKEN_TYPE &&
        !['jwk', 'jku', 'x5u', 'x5c', 'crit'].some((name) => name in header) &&
        header.kid === this.kid
      );
    } catch {
      return false;
    }
  }
}
