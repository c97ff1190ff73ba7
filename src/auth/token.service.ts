import { Injectable } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { decodeProtectedHeader, jwtVerify, SignJWT } from 'jose';
import { AppConfig } from '../config/config.js';
import type { UserEntity } from './user.entity.js';
import {
  ACCESS_TOKEN_TYPE,
  ID_TOKEN_ALGORITHM,
  ID_TOKEN_TTL_SECONDS,
  SigningKeys,
} from './signing-keys.js';

const MFA_TOKEN_TYPE = 'mfa+jwt';
const MFA_TOKEN_TTL_SECONDS = 300;

export interface LoginFacts {
  amr: string[];
  authTime: Date;
}

/** Signs access tokens and the short-lived token that links a password check to its MFA step. */
@Injectable()
export class TokenService {
  constructor(
    private readonly keys: SigningKeys,
    private readonly config: AppConfig,
  ) {}

  /**
   * An access token; with `launch`, one narrowed to SMART scopes (and a patient in context, or
   * the backend client it was issued to); with `sessionId`, one that ends with that refresh
   * token family (logout, a replayed refresh token).
   */
  async accessToken(
    user: UserEntity,
    login: LoginFacts,
    launch?: { scope: string; patient?: string; clientId?: string; notAfter?: number },
    sessionId?: string,
  ): Promise<{ token: string; expiresIn: number }> {
    const { kid, privateKey } = this.keys.current;
    // A narrowed token never outlives the token it was exchanged for.
    const remaining =
      launch?.notAfter !== undefined ? launch.notAfter - Math.floor(Date.now() / 1000) : Infinity;
    const expiresIn = Math.max(1, Math.min(this.config.accessTokenTtl, remaining));
    const token = await new SignJWT({
      username: user.username,
      roles: user.roles,
      amr: login.amr,
      auth_time: Math.floor(login.authTime.getTime() / 1000),
      // Private claim: the token stops when the account's sessions end (AccountStatus).
      session_epoch: user.sessionEpoch,
      // OpenID's session id: the token stops when its session ends (SessionStatus).
      ...(sessionId ? { sid: sessionId } : {}),
      ...(launch ? { scope: launch.scope } : {}),
      ...(launch?.patient ? { patient: launch.patient } : {}),
      ...(launch?.clientId ? { client_id: launch.clientId } : {}),
    })
      .setProtectedHeader({ alg: 'ES256', typ: ACCESS_TOKEN_TYPE, kid })
      .setIssuer(this.config.jwtIssuer)
      .setAudience(this.config.jwtAudience)
      .setSubject(user.id)
      .setJti(randomUUID())
      .setIssuedAt()
      .setExpirationTime(`${expiresIn}s`)
      .sign(privateKey);
    return { token, expiresIn };
  }

  /**
   * An OpenID Connect id_token for an app (SMART's `openid` scope): who signed in, when and how,
   * for the app alone (`aud`), signed RS256 with a key of its own (in the same JWKS): SMART
   * requires RS256, and apps' OpenID libraries expect it by default.
   */
  async idToken(
    user: UserEntity,
    login: LoginFacts,
    claims: { issuer: string; clientId: string; nonce?: string; fhirUser?: string },
  ): Promise<string> {
    const { kid, privateKey } = this.keys.idToken;
    return new SignJWT({
      auth_time: Math.floor(login.authTime.getTime() / 1000),
      amr: login.amr,
      ...(claims.nonce ? { nonce: claims.nonce } : {}),
      ...(claims.fhirUser ? { fhirUser: claims.fhirUser } : {}),
    })
      .setProtectedHeader({ alg: ID_TOKEN_ALGORITHM, typ: 'JWT', kid })
      .setIssuer(claims.issuer)
      .setAudience(claims.clientId)
      .setSubject(user.id)
      .setIssuedAt()
      .setExpirationTime(`${ID_TOKEN_TTL_SECONDS}s`)
      .sign(privateKey);
  }

  /**
   * The token that carries a password sign-in to its MFA step. It names the account's session
   * epoch: a new password, a disable or an MFA reset in its five minutes undoes the password step.
   */
  async mfaToken(user: { id: string; sessionEpoch: number }): Promise<string> {
    const { kid, privateKey } = this.keys.current;
    return new SignJWT({ session_epoch: user.sessionEpoch })
      .setProtectedHeader({ alg: 'ES256', typ: MFA_TOKEN_TYPE, kid })
      .setIssuer(this.config.jwtIssuer)
      .setAudience(this.mfaAudience())
      .setSubject(user.id)
      .setJti(randomUUID())
      .setIssuedAt()
      .setExpirationTime(`${MFA_TOKEN_TTL_SECONDS}s`)
      .sign(privateKey);
  }

  /**
   * The user an MFA token was issued to, its id (`jti`, to spend it: it works once), expiry and
   * the account's session epoch at the password step; undefined when it is invalid or expired.
   */
  async verifyMfaToken(
    token: string,
  ): Promise<{ userId: string; jti: string; expiresAt: Date; sessionEpoch: number } | undefined> {
    try {
      // Signed by a key still accepted (one retired by a rotation in the last minutes too).
      const key = await this.keys.publicKeyFor(decodeProtectedHeader(token).kid);
      if (!key) return undefined;
      const { payload } = await jwtVerify(token, key, {
        algorithms: ['ES256'],
        typ: MFA_TOKEN_TYPE,
        issuer: this.config.jwtIssuer,
        audience: this.mfaAudience(),
        requiredClaims: ['exp', 'sub', 'jti'],
      });
      // One without the epoch (issued before tokens carried it) would pass any reset: refused.
      const epoch = payload['session_epoch'];
      if (typeof epoch !== 'number') return undefined;
      return {
        userId: payload.sub!,
        jti: payload.jti!,
        expiresAt: new Date(payload.exp! * 1000),
        sessionEpoch: epoch,
      };
    } catch {
      return undefined;
    }
  }

  private mfaAudience(): string {
    return `${this.config.jwtAudience}/mfa`;
  }
}
