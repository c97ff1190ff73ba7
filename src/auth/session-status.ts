import { Injectable } from '@nestjs/common';
import { isUuid } from '../common/ids.js';
import { ACCOUNT_STATE_TTL_MS, MAX_ENTRIES } from './account-status.js';
import type { AuthenticatedUser } from './authenticated-user.js';
import { CachedReads } from './cached-reads.js';
import { RefreshTokenRepository } from './refresh-token.repository.js';

/**
 * Whether the sign-in session an access token was issued in (its `sid`, the refresh token
 * family) goes on. A logout, or a replayed refresh token (a stolen copy: RFC 6819 section
 * 5.2.2.3), revokes the family, and its access tokens are refused within ACCOUNT_STATE_TTL_MS
 * rather than at their expiry: on a shared workstation, whoever sits down after a logout must
 * not read on with the token left in the browser. Read at most once per session and instance
 * every ACCOUNT_STATE_TTL_MS, as the account's state is (AccountStatus).
 */
@Injectable()
export class SessionStatus {
  private readonly states: CachedReads<boolean>;

  constructor(refreshTokens: RefreshTokenRepository) {
    this.states = new CachedReads(ACCOUNT_STATE_TTL_MS, MAX_ENTRIES, (id) =>
      refreshTokens.isFamilyLive(id),
    );
  }

  async allows(user: AuthenticatedUser): Promise<boolean> {
    // A token without a session: a backend client's, an app's without a refresh token, or one
    // issued before tokens named their session. Its expiry ends it.
    if (user.sessionId === undefined) return true;
    return isUuid(user.sessionId) && (await this.states.get(user.sessionId));
  }

  /**
   * A session this instance ended (a logout, a replay caught): its tokens are refused here at
   * once, where the cached answer would have let them read on for up to ACCOUNT_STATE_TTL_MS.
   * Other instances learn it when their answer expires.
   */
  ended(familyId: string): void {
    this.states.forget(familyId);
  }
}
