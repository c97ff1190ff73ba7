import { Injectable } from '@nestjs/common';
import { decodeJwt } from 'jose';
import { AuditContext } from '../audit/audit-context.js';
import type { AuthenticatedUser } from './authenticated-user.js';
import { RequestIdentity } from './request-identity.js';
import { TokenLiveness } from './token-liveness.js';

/** RFC 7662 section 2.2, with SMART's launch context (App Launch 2.0, token introspection). */
export type IntrospectionResponse =
  | { active: false }
  | {
      active: true;
      token_type: 'Bearer';
      sub: string;
      iss: string;
      aud: string | string[];
      exp: number;
      iat?: number;
      scope?: string;
      client_id?: string;
      patient?: string;
      fhirUser?: string;
    };

const INACTIVE = { active: false } as const;

/**
 * Token introspection (RFC 7662) of CareVault's own access tokens: active only when the token
 * would be let through by the guard at this moment, by the same code (signature, issuer,
 * audience, expiry: RequestIdentity; account, app or client, session: TokenLiveness). Everything
 * else is `{active: false}`, without saying why (RFC 7662 2.2): refresh tokens (opaque, only the
 * token endpoint reads them), id_tokens, and an external issuer's tokens (its own endpoint).
 * RFC 7662 section 4 leaves it to the server whom it answers: the account the token stands for
 * (an app asking about its own token, or its user's), or a resource server signed in with the
 * integration role. Anyone else learns nothing (until 2026-12-06 any signed-in user, a billing
 * clerk or a patient app, learned any token's account, patient and liveness).
 */
@Injectable()
export class TokenIntrospection {
  constructor(
    private readonly identity: RequestIdentity,
    private readonly liveness: TokenLiveness,
    private readonly audit: AuditContext,
  ) {}

  async introspect(caller: AuthenticatedUser, token: unknown): Promise<IntrospectionResponse> {
    if (typeof token !== 'string' || token === '') return INACTIVE;
    const user = await this.identity.ownAccessToken(token);
    if (!user || !(await this.liveness.allows(user))) return INACTIVE;
    if (user.id !== caller.id && !caller.roles.includes('integration')) return INACTIVE;
    // The answer names the token's patient: the audit row does too.
    if (user.patient) this.audit.touchPatient(user.patient);
    // Verified above: its claims are ours.
    const claims = decodeJwt(token);
    return {
      active: true,
      token_type: 'Bearer',
      sub: user.id,
      iss: claims.iss!,
      aud: claims.aud!,
      exp: claims.exp!,
      ...(claims.iat !== undefined ? { iat: claims.iat } : {}),
      ...(typeof claims['scope'] === 'string' ? { scope: claims['scope'] } : {}),
      ...(user.clientId ? { client_id: user.clientId } : {}),
      ...(user.patient ? { patient: user.patient } : {}),
      ...(typeof claims['fhirUser'] === 'string' ? { fhirUser: claims['fhirUser'] } : {}),
    };
  }
}
