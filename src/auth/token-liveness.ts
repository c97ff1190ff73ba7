import { Injectable } from '@nestjs/common';
import { AccountStatus } from './account-status.js';
import type { AuthenticatedUser } from './authenticated-user.js';
import { ClientStatus } from './client-status.js';
import { SessionStatus } from './session-status.js';

/**
 * Whether a verified access token still stands: a valid token of an account disabled, deleted
 * or whose sessions ended since (a new password, an MFA reset), of a SMART app or backend client
 * disabled since, or of a session ended since (a logout, a replayed refresh token), is refused
 * within seconds, not at its expiry (AccountStatus, ClientStatus, SessionStatus). One answer for
 * the guard and for token introspection, so that both say the same of a token.
 */
@Injectable()
export class TokenLiveness {
  constructor(
    private readonly accounts: AccountStatus,
    private readonly clients: ClientStatus,
    private readonly sessions: SessionStatus,
  ) {}

  async allows(user: AuthenticatedUser): Promise<boolean> {
    const allowed = await Promise.all([
      this.accounts.allows(user),
      this.clients.allows(user),
      this.sessions.allows(user),
    ]);
    return !allowed.includes(false);
  }
}
