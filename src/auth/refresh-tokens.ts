import { Injectable } from '@nestjs/common';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { AppError } from '../common/errors/app-error.js';
import { AppConfig } from '../config/config.js';
import type { RefreshTokenEntity } from './refresh-token.entity.js';
import { RefreshTokenRepository } from './refresh-token.repository.js';
import { AccountStatus } from './account-status.js';
import { SessionStatus } from './session-status.js';
import type { LoginFacts } from './token.service.js';
import type { UserEntity } from './user.entity.js';

const invalid = (): AppError => AppError.of(401, 'login', 'Invalid or expired refresh token');

/**
 * A refresh token refused, with the account whose session it belongs to when it is one of ours
 * (a replayed, expired or misused token), for the audit row: the request carries no user.
 */
export class RefusedRefreshToken extends AppError {
  constructor(readonly owner: string | undefined) {
    super(401, invalid().issues);
  }
}

/** The account a family belongs to, with its session epoch at the sign-in. */
type SessionOwner = Pick<UserEntity, 'id' | 'sessionEpoch'>;

/** An app's grant (SMART App Launch) that a refresh token family continues. */
export interface AppGrant {
  scope: string;
  patient?: string;
  appId: string;
}

interface Rotated {
  token: string;
  /** The family (session) the new token continues. */
  familyId: string;
  userId: string;
  /** The account's session epoch at the login: the session is over once the account's moved on. */
  sessionEpoch: number;
  login: LoginFacts;
  grant?: AppGrant;
}

/**
 * Refresh token families: rotation on every use, reuse detection, idle and absolute expiry
 * (the automatic logoff of 164.312(a)(2)(iii)).
 */
@Injectable()
export class RefreshTokens {
  constructor(
    private readonly repository: RefreshTokenRepository,
    private readonly config: AppConfig,
    private readonly sessions: SessionStatus,
    private readonly accounts: AccountStatus,
  ) {}

  /**
   * Starts a family for a fresh login, or for an app's grant, in the session epoch the account
   * was in when the sign-in checked it.
   */
  async issue(
    account: SessionOwner,
    login: LoginFacts,
    grant?: AppGrant & { familyId?: string },
  ): Promise<{ token: string; familyId: string }> {
    const now = new Date();
    const absolute = new Date(now.getTime() + this.config.refreshAbsoluteTtl * 1000);
    // An authorization code's family is named before its tokens are made (AuthorizationCodes).
    const familyId = grant?.familyId ?? randomUUID();
    const { token, entity } = this.next(account, familyId, login, grant, now, absolute);
    await this.repository.insert(entity);
    return { token, familyId };
  }

  /**
   * Exchanges a refresh token for the next one of its family. A token that was already used or
   * revoked means it leaked (or was replayed): the whole family is revoked. `clientId`, when the
   * client names itself, must be the app the family was issued to (RFC 6749 section 10.4): the
   * token stays unused, since a misconfigured client is the likelier cause. So does a token
   * whose grant `refuses` what the client asked of it (a scope wider than the grant's).
   */
  async rotate(
    presented: string,
    clientId?: string,
    refuses?: (grant: AppGrant | undefined) => AppError | undefined,
  ): Promise<Rotated> {
    const result = await this.repository.transactionOnToken<
      Rotated | { error: AppError; revoked?: string }
    >(hashOf(presented), async (current, manager) => {
      const now = new Date();
      if (!current) {
        return { error: new RefusedRefreshToken(undefined) };
      }
      const refused = new RefusedRefreshToken(current.userId);
      if (current.revokedAt) {
        await this.repository.revokeFamily(current.familyId, now, manager);
        return { error: refused, revoked: current.familyId };
      }
      if (current.expiresAt <= now || current.absoluteExpiresAt <= now) {
        return { error: refused };
      }
      if (clientId !== undefined && current.appId !== clientId) {
        return { error: refused };
      }
      const login = { amr: current.amr, authTime: current.authTime };
      const grant = grantOf(current);
      const refusal = refuses?.(grant);
      if (refusal) return { error: refusal };
      const { token, entity } = this.next(
        { id: current.userId, sessionEpoch: current.sessionEpoch },
        current.familyId,
        login,
        grant,
        now,
        current.absoluteExpiresAt,
      );
      await this.repository.markUsed(current.id, now, manager);
      await this.repository.insert(entity, manager);
      return {
        token,
        familyId: current.familyId,
        userId: current.userId,
        sessionEpoch: current.sessionEpoch,
        login,
        ...(grant ? { grant } : {}),
      };
    });
    // The family revocation above must commit, so the error is thrown after the transaction.
    if ('error' in result) {
      if (result.revoked) this.sessions.ended(result.revoked);
      throw result.error;
    }
    return result;
  }

  /** Ends the token's family; the account it belonged to, when it is one of ours. */
  async revokeFamilyOf(presented: string): Promise<string | undefined> {
    const revoked = await this.repository.transactionOnToken(
      hashOf(presented),
      async (current, manager) => {
        if (!current) return undefined;
        await this.repository.revokeFamily(current.familyId, new Date(), manager);
        return current;
      },
    );
    if (revoked) this.sessions.ended(revoked.familyId);
    return revoked?.userId;
  }

  /** Ends a family by its id: the tokens issued for an authorization code presented twice. */
  async revokeFamily(familyId: string): Promise<void> {
    await this.repository.revokeFamily(familyId, new Date());
    this.sessions.ended(familyId);
  }

  /** Ends every session of an account, which has just moved to a new session epoch. */
  async revokeAllOf(userId: string): Promise<void> {
    await this.repository.revokeAllOfUser(userId, new Date());
    this.accounts.changed(userId);
  }

  /** Ends every family issued to a SMART app (its grants), whoever signed in to it. */
  revokeAllOfApp(appId: string): Promise<void> {
    return this.repository.revokeAllOfApp(appId, new Date());
  }

  private next(
    account: SessionOwner,
    familyId: string,
    login: LoginFacts,
    grant: AppGrant | undefined,
    now: Date,
    absolute: Date,
  ): { token: string; entity: RefreshTokenEntity } {
    const token = `rt_${randomBytes(32).toString('base64url')}`;
    const idle = new Date(
      Math.min(now.getTime() + this.config.refreshIdleTtl * 1000, absolute.getTime()),
    );
    return {
      token,
      entity: {
        id: randomUUID(),
        tokenHash: hashOf(token),
        familyId,
        userId: account.id,
        amr: login.amr,
        authTime: login.authTime,
        sessionEpoch: account.sessionEpoch,
        createdAt: now,
        expiresAt: idle,
        absoluteExpiresAt: absolute,
        revokedAt: null,
        scope: grant?.scope ?? null,
        patient: grant?.patient ?? null,
        appId: grant?.appId ?? null,
      },
    };
  }
}

function grantOf(token: RefreshTokenEntity): AppGrant | undefined {
  if (token.scope === null || token.appId === null) return undefined;
  return {
    scope: token.scope,
    appId: token.appId,
    ...(token.patient !== null ? { patient: token.patient } : {}),
  };
}

function hashOf(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}
