import { Injectable, Logger } from '@nestjs/common';
import QRCode from 'qrcode';
import { PatientRepository } from '../access/patient.repository.js';
import { AuditContext } from '../audit/audit-context.js';
import { AppError } from '../common/errors/app-error.js';
import { isUuid } from '../common/ids.js';
import { AppConfig } from '../config/config.js';
import { UnitOfWork } from '../database/unit-of-work.js';
import { SmartAppRepository } from './apps/smart-app.repository.js';
import { narrowedGrant } from './apps/app-scopes.js';
import type { AuthenticatedUser } from './authenticated-user.js';
import type { MfaRequiredResponse, OAuthError, TokenResponse } from './dto.js';
import { assertNewPassword, PasswordHasher } from './password.js';
import { RefreshTokens, RefusedRefreshToken, type AppGrant } from './refresh-tokens.js';
import { parseScopes } from './smart-scopes.js';
import { TokenService, type LoginFacts } from './token.service.js';
import { newTotpSecret, totpUri, verifyTotp } from './totp.js';
import type { UserEntity } from './user.entity.js';
import { UserRepository } from './user.repository.js';

/** The one answer to every failed sign-in, so that it does not tell which part was wrong. */
const invalidCredentials = (): AppError =>
  AppError.of(401, 'login', 'Invalid username or password');
const invalidCode = (): AppError => AppError.of(401, 'login', 'Invalid or expired MFA code');

/** Sign-in flows: password, MFA, refresh, logout, and MFA enrolment for the signed-in user. */
@Injectable()
export class AuthService {
  private readonly logger = new Logger('Auth');

  constructor(
    private readonly users: UserRepository,
    private readonly tokens: TokenService,
    private readonly refreshTokens: RefreshTokens,
    private readonly config: AppConfig,
    private readonly audit: AuditContext,
    private readonly apps: SmartAppRepository,
    private readonly unitOfWork: UnitOfWork,
    private readonly patients: PatientRepository,
    private readonly passwords: PasswordHasher,
  ) {}

  /**
   * The account a sign-in is about, for its audit row (the request carries no token yet), and
   * the app a refresh of its grant is for.
   */
  private actor(user: UserEntity, clientId?: string): void {
    this.audit.setActor({
      id: user.id,
      name: user.username,
      roles: [...user.roles],
      ...(clientId !== undefined ? { clientId } : {}),
    });
  }

  /** The account a refresh token belonged to, for the audit row of a route that takes no token. */
  private async actorById(userId: string): Promise<void> {
    const user = await this.users.findById(userId);
    if (user) this.actor(user);
  }

  async login(username: string, password: string): Promise<TokenResponse | MfaRequiredResponse> {
    const user = await this.checkPassword(username, password);
    if (user.mfaEnabled) {
      return { mfa_required: true, mfa_token: await this.tokens.mfaToken(user) };
    }
    return this.issue(user, { amr: ['pwd'], authTime: new Date() });
  }

  /**
   * Password and, where enrolled, MFA code in one step, for the authorization endpoint's sign-in
   * form (SMART App Launch): the same lockout, timing and answers as POST /auth/login.
   */
  async authenticate(
    username: string,
    password: string,
    code: string | undefined,
  ): Promise<{ user: UserEntity; login: LoginFacts }> {
    const user = await this.checkPassword(username, password);
    if (!user.mfaEnabled) return { user, login: { amr: ['pwd'], authTime: new Date() } };
    if (!code || !user.totpSecret) {
      throw AppError.of(401, 'login', 'This account signs in with an MFA code as well');
    }
    await this.acceptSignInCode(user, code);
    return { user, login: { amr: ['pwd', 'otp'], authTime: new Date() } };
  }

  /** The active account whose password this is; every failure is the same 401. */
  private async checkPassword(username: string, password: string): Promise<UserEntity> {
    const user = await this.users.findByUsername(username);
    if (!user) {
      await this.passwords.verifyAgainstDummy(password);
      throw invalidCredentials();
    }
    this.actor(user);
    const now = new Date();
    if (user.lockedUntil && user.lockedUntil > now) {
      // Still spend the hashing time: a locked account answers like any other failure.
      await this.passwords.verifyAgainstDummy(password);
      this.logger.warn({ msg: 'Login refused: account locked', userId: user.id });
      throw invalidCredentials();
    }
    if (!(await this.passwords.verify(user.passwordHash, password))) {
      await this.recordFailure(user, now);
      throw invalidCredentials();
    }
    // Read again: the account may have been disabled, locked or changed while the hash ran.
    const current = await this.users.findById(user.id);
    if (!current?.active || (current.lockedUntil && current.lockedUntil > now)) {
      throw invalidCredentials();
    }
    // With MFA, the sign-in succeeds only with the code: the count is cleared then.
    if (!current.mfaEnabled) await this.clearFailures(current);
    return current;
  }

  private async clearFailures(user: UserEntity): Promise<void> {
    if (user.failedAttempts > 0 || user.lockedUntil) {
      await this.users.update(user.id, { failedAttempts: 0, lockedUntil: null });
    }
  }

  async loginMfa(mfaToken: string, code: string): Promise<TokenResponse> {
    const token = await this.tokens.verifyMfaToken(mfaToken);
    const user = token ? await this.users.findById(token.userId) : null;
    if (user) this.actor(user);
    // A token of an earlier session epoch: the account's sessions ended after its password step
    // (a new password, a disable), which whoever knew the old password must not complete.
    if (
      !token ||
      !user ||
      !user.active ||
      !user.mfaEnabled ||
      !user.totpSecret ||
      token.sessionEpoch !== user.sessionEpoch
    ) {
      throw invalidCode();
    }
    await this.acceptSignInCode(user, code);
    // Spent once the code is right (a mistyped code may be tried again): one password check is
    // one session, not one per code that comes up in the token's five minutes.
    if (!(await this.users.spendMfaToken(user.id, token.jti, token.expiresAt))) {
      this.logger.warn({ msg: 'MFA token replayed', userId: user.id });
      throw invalidCode();
    }
    return this.issue(user, { amr: ['pwd', 'otp'], authTime: new Date() });
  }

  /**
   * The next tokens of a session. `scope`, asked at the token endpoint (RFC 6749 section 6),
   * narrows the access token within the app's grant (until 2026-12-06 any scope was refused,
   * the grant's own included, which SMART's and ONC's refresh tests send); the refresh token
   * keeps the grant, and is left unused when the scope is refused.
   */
  async refresh(refreshToken: string, clientId?: string, scope?: string): Promise<TokenResponse> {
    let narrowed: string | undefined;
    const refuses = (grant: AppGrant | undefined): AppError | undefined => {
      if (scope === undefined) return undefined;
      narrowed = grant ? narrowedGrant(grant.scope, scope) : undefined;
      if (narrowed !== undefined) return undefined;
      return new InvalidScope(
        grant
          ? `scope must be within the grant: ${grant.scope}`
          : "This session's token has no scope to narrow: use POST /auth/token/scoped",
      );
    };
    const { token, familyId, userId, sessionEpoch, login, grant } = await this.refreshTokens
      .rotate(refreshToken, clientId, refuses)
      .catch(async (error: unknown) => {
        // A replayed token ends its session: the row names whose session that was.
        if (error instanceof RefusedRefreshToken && error.owner) await this.actorById(error.owner);
        throw error;
      });
    const user = await this.users.findById(userId);
    if (user) this.actor(user, grant?.appId);
    if (!user || !user.active) {
      // A disabled user's sessions end at the next refresh.
      await this.refreshTokens.revokeAllOf(userId);
      throw AppError.of(401, 'login', 'Invalid or expired refresh token');
    }
    if (user.sessionEpoch !== sessionEpoch) {
      // Signed in before the account's sessions were ended (an MFA reset, a new password) and
      // missed by their revocation. This family only: the user may have signed in again since.
      await this.refreshTokens.revokeFamilyOf(token);
      throw AppError.of(401, 'login', 'Invalid or expired refresh token');
    }
    if (grant && !(await this.apps.isActive(grant.appId))) {
      await this.refreshTokens.revokeFamilyOf(token);
      throw AppError.of(401, 'login', 'Invalid or expired refresh token');
    }
    // An app's grant carries over, or narrower: a refreshed token is never wider than approved.
    const access = await this.tokens.accessToken(
      user,
      login,
      grant
        ? {
            scope: narrowed ?? grant.scope,
            clientId: grant.appId,
            ...(grant.patient ? { patient: grant.patient } : {}),
          }
        : undefined,
      familyId,
    );
    return {
      access_token: access.token,
      token_type: 'Bearer',
      expires_in: access.expiresIn,
      refresh_token: token,
      ...(grant
        ? { scope: narrowed ?? grant.scope, ...(grant.patient ? { patient: grant.patient } : {}) }
        : {}),
    };
  }

  /**
   * The OAuth 2.0 token endpoint (RFC 6749 section 6): the refresh_token grant, the one a SMART
   * client can use here (see SmartConfiguration). Failures are OAuth errors, which is what such
   * clients read, rather than OperationOutcomes.
   */
  async oauthToken(fields: Record<string, unknown>): Promise<TokenResponse | OAuthError> {
    const grant = fields['grant_type'];
    if (typeof grant !== 'string' || grant === '') {
      return { error: 'invalid_request', error_description: 'grant_type is required' };
    }
    if (grant !== 'refresh_token') {
      return {
        error: 'unsupported_grant_type',
        error_description:
          'Offered: authorization_code for registered SMART apps, refresh_token, and client_credentials for registered backend clients',
      };
    }
    const token = fields['refresh_token'];
    if (typeof token !== 'string' || token === '') {
      return { error: 'invalid_request', error_description: 'refresh_token is required' };
    }
    const scope = fields['scope'];
    if (scope !== undefined && typeof scope !== 'string') {
      return { error: 'invalid_request', error_description: 'scope must be one text' };
    }
    try {
      const client = fields['client_id'];
      return await this.refresh(
        token,
        typeof client === 'string' && client !== '' ? client : undefined,
        scope || undefined,
      );
    } catch (error) {
      if (error instanceof InvalidScope) {
        return { error: 'invalid_scope', error_description: error.message };
      }
      if (error instanceof AppError && error.status === 401) {
        return { error: 'invalid_grant', error_description: 'Invalid or expired refresh token' };
      }
      throw error;
    }
  }

  /**
   * Exchanges the caller's token for one narrowed to SMART scopes, optionally with a patient in
   * context, for an app that should see less than its user may (SMART's scope model; RFC 8693
   * token exchange in spirit). Only a CareVault account's unscoped token can be exchanged, so
   * a scoped token can never be widened.
   */
  async scopedToken(
    current: AuthenticatedUser,
    scope: string,
    patient: string | undefined,
  ): Promise<{ access_token: string; token_type: 'Bearer'; expires_in: number; scope: string }> {
    if (current.scopes !== undefined) {
      throw AppError.forbidden('A scoped token cannot be exchanged again');
    }
    if (scope.split(/\s+/).some((item) => item.includes('?'))) {
      throw AppError.invalid(
        'Scopes narrowed by search parameters (?category=…) are not supported: ask without them',
        ['scope'],
      );
    }
    const scopes = parseScopes(scope) ?? [];
    if (scopes.length === 0) {
      throw AppError.invalid('scope must hold at least one SMART resource scope', ['scope']);
    }
    if (scopes.some((item) => item.context === 'patient') && !patient) {
      throw AppError.invalid('patient/ scopes need a patient in context', ['patient']);
    }
    // The patient goes into the token and into the scope of every audit row the token makes:
    // an MRN given in place of the id (the SMART sign-in form takes either) would sit there in
    // plaintext, so it must be the id of a stored Patient.
    if (patient && !(await this.patients.isStoredPatient(patient))) {
      throw AppError.of(
        404,
        'not-found',
        'patient must be the CareVault id of a stored Patient (not an MRN or other identifier)',
        ['patient'],
      );
    }
    const user = await this.requireUser(current.id);
    const access = await this.tokens.accessToken(
      user,
      { amr: current.amr, authTime: new Date(current.authTime * 1000) },
      {
        scope,
        ...(patient ? { patient } : {}),
        ...(current.expiresAt !== undefined ? { notAfter: current.expiresAt } : {}),
      },
      // A narrowed token ends with the session of the token it was exchanged for.
      current.sessionId,
    );
    return {
      access_token: access.token,
      token_type: 'Bearer',
      expires_in: access.expiresIn,
      scope,
    };
  }

  async logout(refreshToken: string): Promise<void> {
    const owner = await this.refreshTokens.revokeFamilyOf(refreshToken);
    if (owner) await this.actorById(owner);
  }

  /** Starts MFA enrolment: a new secret, shown once; MFA is on only after a code is verified. */
  async enrollMfa(
    current: AuthenticatedUser,
  ): Promise<{ secret: string; otpauth_uri: string; qr_png: string }> {
    refuseScopedToken(current, "An app's scoped token cannot change the account's MFA");
    // Checked and written with the row locked: an activation committing in between would
    // otherwise have its secret replaced, and a stolen token could swap in a secret of its own.
    const { username, secret } = await this.unitOfWork.run(async () => {
      const user = await this.requireUser(current.id, { forUpdate: true });
      if (user.mfaEnabled) {
        throw AppError.conflict('MFA is already active; an administrator can reset it');
      }
      const secret = newTotpSecret();
      await this.users.update(user.id, { totpSecret: secret, totpLastStep: null });
      return { username: user.username, secret };
    });
    const uri = totpUri(username, secret);
    return { secret, otpauth_uri: uri, qr_png: await QRCode.toDataURL(uri) };
  }

  async activateMfa(current: AuthenticatedUser, code: string): Promise<{ mfa_enabled: true }> {
    refuseScopedToken(current, "An app's scoped token cannot change the account's MFA");
    // With the row locked: an administrator's reset (or a new enrolment) in between would
    // otherwise leave MFA on with no secret, or with one the code was not checked against.
    await this.unitOfWork.run(async () => {
      const user = await this.requireUser(current.id, { forUpdate: true });
      if (!user.totpSecret || user.mfaEnabled) {
        throw AppError.conflict('Start with POST /auth/mfa/enroll');
      }
      await this.acceptCode(user, code);
      await this.users.update(user.id, { mfaEnabled: true });
    });
    return { mfa_enabled: true };
  }

  /**
   * The signed-in user's new password. The current one is checked as at login (a wrong one counts
   * towards the lockout, a locked account is refused), and every session of the account ends,
   * this one's too: whoever had the old password may have signed in with it.
   */
  async changePassword(current: AuthenticatedUser, password: string, next: string): Promise<void> {
    refuseScopedToken(current, "An app's scoped token cannot change the account's password");
    const user = await this.requireUser(current.id);
    assertNewPassword(next, current.username, 'new_password');
    if (next === password) {
      throw AppError.invalid('new_password is the current password', ['new_password']);
    }
    const now = new Date();
    const wrong = () => AppError.forbidden('current_password is not the account’s password');
    if (user.lockedUntil && user.lockedUntil > now) {
      await this.passwords.verifyAgainstDummy(password);
      throw wrong();
    }
    if (!(await this.passwords.verify(user.passwordHash, password))) {
      await this.recordFailure(user, now);
      throw wrong();
    }
    const passwordHash = await this.passwords.hash(next);
    await this.unitOfWork.run(async () => {
      const locked = await this.requireUser(current.id, { forUpdate: true });
      // Changed while this one was checked (another change, an administrator's reset).
      if (locked.passwordHash !== user.passwordHash) {
        throw AppError.conflict('The password was changed meanwhile: sign in again');
      }
      await this.users.endSessions(user.id, { passwordHash, failedAttempts: 0, lockedUntil: null });
    });
    await this.refreshTokens.revokeAllOf(user.id);
  }

  /**
   * An MFA code at sign-in: a wrong one counts towards the lockout as a wrong password does, so
   * that whoever has the password cannot try codes without end (an MFA token lasts minutes,
   * and a new one is a password away); a locked account is refused, right code or not.
   */
  private async acceptSignInCode(user: UserEntity, code: string): Promise<void> {
    const now = new Date();
    if (user.lockedUntil && user.lockedUntil > now) throw invalidCode();
    try {
      await this.acceptCode(user, code);
    } catch (error) {
      await this.recordFailure(user, now);
      throw error;
    }
    await this.clearFailures(user);
  }

  private async acceptCode(user: UserEntity, code: string): Promise<void> {
    const step = await verifyTotp(user.totpSecret as string, code, user.totpLastStep);
    if (step === undefined || !(await this.users.claimTotpStep(user.id, step))) {
      throw invalidCode();
    }
  }

  /**
   * Counts a failed password or sign-in MFA code. From the limit on, the account locks, each
   * further failure doubling the lock (backoff), capped at a day.
   */
  private async recordFailure(user: UserEntity, now: Date): Promise<void> {
    const failedAttempts = await this.users.recordFailedLogin(
      user.id,
      now,
      this.config.loginMaxAttempts,
      this.config.loginLockoutSeconds,
    );
    if (failedAttempts !== undefined && failedAttempts >= this.config.loginMaxAttempts) {
      this.logger.warn({
        msg: 'Account locked after failed logins',
        userId: user.id,
        failedAttempts,
      });
    }
  }

  private async issue(user: UserEntity, login: LoginFacts): Promise<TokenResponse> {
    const { token: refresh, familyId } = await this.refreshTokens.issue(user, login);
    const access = await this.tokens.accessToken(user, login, undefined, familyId);
    return {
      access_token: access.token,
      token_type: 'Bearer',
      expires_in: access.expiresIn,
      refresh_token: refresh,
    };
  }

  private async requireUser(id: string, options = { forUpdate: false }): Promise<UserEntity> {
    if (!isUuid(id)) {
      // `oidc:<sub>`: an account of the identity provider, which has no row here.
      throw AppError.forbidden(
        'This account signs in with the identity provider, which manages its password, MFA and tokens',
      );
    }
    const user = await (options.forUpdate
      ? this.users.findByIdForUpdate(id)
      : this.users.findById(id));
    if (!user || !user.active) {
      throw AppError.of(401, 'login', 'Authentication is required');
    }
    return user;
  }
}

/**
 * A scoped token (a SMART app's, a backend client's, one exchanged at /auth/token/scoped) is for
 * FHIR data: it may not change how the account signs in. An app that enrolled MFA with a secret
 * of its own would hold the user's second factor and lock the user out of their account.
 */
function refuseScopedToken(current: AuthenticatedUser, message: string): void {
  if (current.scopes !== undefined) throw AppError.forbidden(message);
}

/** A scope the refresh_token grant refuses, which the token endpoint answers `invalid_scope`. */
class InvalidScope extends AppError {
  constructor(message: string) {
    super(400, [{ severity: 'error', code: 'invalid', diagnostics: message }]);
  }
}
