import type { AuthenticatedUser } from './authenticated-user.js';

/** Enough for every session of a busy deployment; past it the oldest entries go first. */
const MAX_ENTRIES = 10_000;

/**
 * Access tokens this process has already verified, by their exact text, with the user they
 * stand for. Checking an ES256 signature costs about 0.1 ms of CPU, which was 16 % of a Patient
 * read's. Nothing is lost by remembering the answer: the same bytes verify the same way, the
 * claims cannot change, and a remembered token is still refused once it expires. What can change,
 * the account's state (disabled, sessions ended), is checked on every request apart from this
 * (AccountStatus).
 */
export class VerifiedTokens {
  private readonly users = new Map<string, AuthenticatedUser>();
  private keys = 0;

  /**
   * The user of a token verified before and not yet expired; a copy, for the request to own.
   * `keys` is SigningKeys.generation: when the accepted keys change (a retired key expires),
   * every remembered answer is forgotten, since it may rest on a key no longer accepted.
   */
  get(token: string, keys: number): AuthenticatedUser | undefined {
    if (keys !== this.keys) {
      this.users.clear();
      this.keys = keys;
    }
    const user = this.users.get(token);
    if (!user) return undefined;
    if (user.expiresAt === undefined || user.expiresAt * 1000 <= Date.now()) {
      this.users.delete(token);
      return undefined;
    }
    return { ...user };
  }

  remember(token: string, user: AuthenticatedUser): void {
    if (user.expiresAt === undefined) return;
    if (this.users.size >= MAX_ENTRIES) {
      // Maps iterate in insertion order: the first key is the oldest.
      this.users.delete(this.users.keys().next().value!);
    }
    this.users.set(token, { ...user });
  }
}
