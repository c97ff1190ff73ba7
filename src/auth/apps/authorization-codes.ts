import { Injectable } from '@nestjs/common';
import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { AuditContext } from '../../audit/audit-context.js';
import { isUuid } from '../../common/ids.js';
import type { OAuthError } from '../dto.js';
import { RefreshTokens } from '../refresh-tokens.js';
import { TokenService, type LoginFacts } from '../token.service.js';
import { UserRepository } from '../user.repository.js';
import { SmartAppRepository } from './smart-app.repository.js';
import { SMART_STYLE_PATH } from './smart-style.js';

/** RFC 6749 recommends ten minutes at most; an app redeems its code at once. */
const CODE_TTL_SECONDS = 60;
/** RFC 7636 section 4.1: 43 to 128 unreserved characters. */
const CODE_VERIFIER = /^[A-Za-z0-9._~-]{43,128}$/;

export interface AppTokenResponse {
  access_token: string;
  token_type: 'Bearer';
  expires_in: number;
  scope: string;
  patient?: string;
  encounter?: string;
  /** With a patient in context: the app shows which patient it is about (no EHR frames it). */
  need_patient_banner?: boolean;
  smart_style_url?: string;
  refresh_token?: string;
  id_token?: string;
}

/** What the user approved at the authorization endpoint, for the code that carries it. */
export interface Approval {
  appId: string;
  userId: string;
  /** The account's session epoch when the sign-in checked it. */
  sessionEpoch: number;
  login: LoginFacts;
  redirectUri: string;
  scope: string;
  patient?: string;
  encounter?: string;
  codeChallenge: string;
  nonce?: string;
}

const invalidGrant = (description: string): OAuthError => ({
  error: 'invalid_grant',
  error_description: description,
});

/**
 * The authorization code grant of SMART App Launch for public apps: a one-time code, bound to
 * the app, its redirect URI and a PKCE S256 challenge, exchanged within a minute for an access
 * token with the approved scope and patient, a refresh token when offline_access or
 * online_access was granted, and an OpenID Connect id_token when openid was. A code is spent by its first presentation, right or wrong; one
 * presented again revokes the refresh tokens issued for it (RFC 6749 section 4.1.2).
 */
@Injectable()
export class AuthorizationCodes {
  constructor(
    private readonly apps: SmartAppRepository,
    private readonly users: UserRepository,
    private readonly tokens: TokenService,
    private readonly refreshTokens: RefreshTokens,
    private readonly audit: AuditContext,
  ) {}

  async issue(approval: Approval): Promise<string> {
    const code = `ac_${randomBytes(32).toString('base64url')}`;
    await this.apps.insertCode(hashOf(code), {
      appId: approval.appId,
      userId: approval.userId,
      redirectUri: approval.redirectUri,
      scope: approval.scope,
      patient: approval.patient ?? null,
      encounter: approval.encounter ?? null,
      codeChallenge: approval.codeChallenge,
      nonce: approval.nonce ?? null,
      amr: approval.login.amr,
      authTime: approval.login.authTime,
      sessionEpoch: approval.sessionEpoch,
      expiresAt: new Date(Date.now() + CODE_TTL_SECONDS * 1000),
    });
    return code;
  }

  /**
   * The token endpoint's `authorization_code` grant. `origin` is the server's as the app reached
   * it: the id_token's issuer, whose OpenID configuration is there.
   */
  async token(
    fields: Record<string, unknown>,
    origin: string,
  ): Promise<AppTokenResponse | OAuthError> {
    const field = (name: string): string | undefined =>
      typeof fields[name] === 'string' && fields[name] !== '' ? fields[name] : undefined;
    const [code, redirectUri, clientId, verifier] = [
      field('code'),
      field('redirect_uri'),
      field('client_id'),
      field('code_verifier'),
    ];
    if (!code || !redirectUri || !clientId || !verifier) {
      return {
        error: 'invalid_request',
        error_description: 'code, redirect_uri, client_id and code_verifier are required',
      };
    }
    const hash = hashOf(code);
    // The family is recorded with the code as it is spent, so that a second presentation,
    // however soon, names the tokens to revoke.
    const familyId = randomUUID();
    const found = await this.apps.spendCode(hash, familyId);
    if (!found) return invalidGrant('Invalid or expired authorization code');
    if ('spent' in found) {
      if (found.spent) await this.refreshTokens.revokeFamily(found.spent);
      return invalidGrant(
        'The authorization code was already used: the tokens issued for it are revoked',
      );
    }
    const granted = found.code;
    if (granted.expiresAt <= new Date()) {
      return invalidGrant('Invalid or expired authorization code');
    }
    if (!isUuid(clientId) || clientId !== granted.appId || redirectUri !== granted.redirectUri) {
      return invalidGrant('The code was issued to another client or redirect URI');
    }
    if (!CODE_VERIFIER.test(verifier) || !sameChallenge(verifier, granted.codeChallenge)) {
      return invalidGrant('code_verifier does not match the code_challenge (PKCE S256)');
    }
    const user = await this.users.findById(granted.userId);
    if (user) {
      this.audit.setActor({
        id: user.id,
        name: user.username,
        roles: [...user.roles],
        clientId: granted.appId,
      });
    }
    if (!user?.active || !(await this.apps.isActive(granted.appId))) {
      return invalidGrant('The user or the app has been disabled');
    }
    // An MFA reset or a new password between the sign-in and now ended this sign-in too.
    if (user.sessionEpoch !== granted.sessionEpoch) {
      return invalidGrant("The user's sessions were ended after this sign-in");
    }
    const login = { amr: granted.amr, authTime: granted.authTime };
    const patient = granted.patient ?? undefined;
    const items = granted.scope.split(' ');
    const offline = items.includes('offline_access') || items.includes('online_access');
    // With a refresh token, the access token ends with its family (a replayed refresh token, a
    // second presentation of the code); without one there is no session to end but its expiry.
    const access = await this.tokens.accessToken(
      user,
      login,
      { scope: granted.scope, clientId: granted.appId, ...(patient ? { patient } : {}) },
      offline ? familyId : undefined,
    );
    const refresh = offline
      ? await this.refreshTokens.issue(user, login, {
          scope: granted.scope,
          appId: granted.appId,
          ...(patient ? { patient } : {}),
          familyId,
        })
      : undefined;
    // Presented again while these tokens were made: that presentation found nothing stored yet
    // to revoke, so this one does, and the app gets no tokens (RFC 6749 section 4.1.2).
    if (refresh && !(await this.apps.holdsFamily(hash, familyId))) {
      await this.refreshTokens.revokeFamily(familyId);
      return invalidGrant(
        'The authorization code was already used: the tokens issued for it are revoked',
      );
    }
    const idToken = items.includes('openid')
      ? await this.tokens.idToken(user, login, {
          issuer: origin,
          clientId: granted.appId,
          ...(granted.nonce ? { nonce: granted.nonce } : {}),
          ...(items.includes('fhirUser') && user.fhirUser
            ? { fhirUser: `${origin}/fhir/${user.fhirUser}` }
            : {}),
        })
      : undefined;
    return {
      access_token: access.token,
      token_type: 'Bearer',
      expires_in: access.expiresIn,
      scope: granted.scope,
      ...(patient ? { patient } : {}),
      ...(granted.encounter ? { encounter: granted.encounter } : {}),
      ...(patient
        ? { need_patient_banner: true, smart_style_url: `${origin}${SMART_STYLE_PATH}` }
        : {}),
      ...(refresh ? { refresh_token: refresh.token } : {}),
      ...(idToken ? { id_token: idToken } : {}),
    };
  }
}

/** PKCE S256 (RFC 7636 section 4.6), compared in constant time. */
function sameChallenge(verifier: string, challenge: string): boolean {
  const computed = Buffer.from(createHash('sha256').update(verifier).digest('base64url'));
  const expected = Buffer.from(challenge);
  return computed.length === expected.length && timingSafeEqual(computed, expected);
}

function hashOf(code: string): string {
  return createHash('sha256').update(code).digest('hex');
}
