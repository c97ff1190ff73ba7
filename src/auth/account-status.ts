import { Injectable } from '@nestjs/common';
import { isUuid } from '../common/ids.js';
import type { AuthenticatedUser } from './authenticated-user.js';
import { CachedReads } from './cached-reads.js';
import { UserRepository, type AccountState } from './user.repository.js';

/**
 * How long an account's state read from the database is trusted. A disable, a new password or an
 * MFA reset (anywhere: another instance, the CLI) stops the account's access tokens within this
 * time rather than at their expiry (15 minutes), which is what a termination procedure expects
 * (45 CFR 164.308(a)(3)(ii)(C)). Reading the row on every request would cost a round trip to
 * PostgreSQL per request for an answer that changes a few times a year; five seconds makes it
 * one read per user and instance every five seconds, and is far shorter than any step of an
 * offboarding.
 */
export const ACCOUNT_STATE_TTL_MS = 5_000;
/** Enough for every user of a busy deployment; past it the oldest entries go first. */
export const MAX_ENTRIES = 10_000;

/**
 * Whether the kept state was read before the token was issued: the token is of a later epoch (a
 * sign-in after the CLI or another instance moved the epoch on), or of the kept epoch while the
 * state says disabled (a disable moves the epoch on, so the token was issued after an enable).
 * Refusing it would sign a user out right after they signed in, for up to ACCOUNT_STATE_TTL_MS.
 */
function staleFor(state: AccountState, epoch: number): boolean {
  return epoch > state.sessionEpoch || (epoch === state.sessionEpoch && !state.active);
}

/**
 * Whether the account an access token stands for may still use it: it exists, is active, and is
 * in the session epoch the token was issued in (a disable, a new password or an MFA reset moves
 * the epoch on). Signature and expiry are checked before this (VerifiedTokens remembers those);
 * the account's state is read again at most every ACCOUNT_STATE_TTL_MS.
 */
@Injectable()
export class AccountStatus {
  private readonly states: CachedReads<AccountState | null>;

  constructor(users: UserRepository) {
    this.states = new CachedReads(ACCOUNT_STATE_TTL_MS, MAX_ENTRIES, (id) => users.findState(id));
  }

  async allows(user: AuthenticatedUser): Promise<boolean> {
    // An identity provider's account (`oidc:<sub>`) has no row here: the provider disables it.
    if (!isUuid(user.id)) return true;
    // A token issued before tokens carried the epoch is of the epoch every account started in
    // (the session-epoch migration's 0): a password or MFA reset since then ends it too.
    const epoch = user.sessionEpoch ?? 0;
    let state = await this.states.get(user.id);
    if (state !== null && staleFor(state, epoch)) {
      this.states.forget(user.id);
      state = await this.states.get(user.id);
    }
    return state !== null && state.active && epoch === state.sessionEpoch;
  }

  /**
   * An account this instance changed (disabled, enabled, a new password, an MFA reset): read
   * afresh by the next request here, where the cached state would have let its old tokens read
   * on for up to ACCOUNT_STATE_TTL_MS. Other instances, and the CLI's changes, take that long.
   */
  changed(userId: string): void {
    this.states.forget(userId);
  }
}
