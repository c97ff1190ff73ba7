import { jest } from '@jest/globals';
import { ACCOUNT_STATE_TTL_MS, AccountStatus } from './account-status.js';
import type { AuthenticatedUser } from './authenticated-user.js';
import type { AccountState, UserRepository } from './user.repository.js';

const ID = '7f1c2a9e-4a53-4c1e-9a57-3c1f0e2b8d11';

describe('AccountStatus', () => {
  let users: jest.Mocked<Pick<UserRepository, 'findState'>>;
  let status: AccountStatus;
  let now: number;
  const token = (extra: Partial<AuthenticatedUser> = {}): AuthenticatedUser => ({
    id: ID,
    username: 'doc',
    roles: ['doctor'],
    amr: ['pwd'],
    authTime: 0,
    sessionEpoch: 2,
    ...extra,
  });
  const stored = (state: AccountState | null) => users.findState.mockResolvedValue(state);

  beforeEach(() => {
    now = 1_000_000;
    jest.spyOn(Date, 'now').mockImplementation(() => now);
    users = { findState: jest.fn() };
    status = new AccountStatus(users as unknown as UserRepository);
  });

  afterEach(() => jest.restoreAllMocks());

  it('allows an active account in the epoch of the token, and not one disabled, deleted or moved on', async () => {
    stored({ active: true, sessionEpoch: 2 });
    await expect(status.allows(token())).resolves.toBe(true);
    for (const state of [
      { active: false, sessionEpoch: 2 },
      { active: true, sessionEpoch: 3 },
      null,
    ]) {
      const fresh = new AccountStatus(users as unknown as UserRepository);
      stored(state);
      await expect(fresh.allows(token())).resolves.toBe(false);
    }
  });

  it('reads a token issued without its epoch as of epoch 0, which a reset moves on from', async () => {
    stored({ active: true, sessionEpoch: 0 });
    await expect(status.allows(token({ sessionEpoch: undefined }))).resolves.toBe(true);
    stored({ active: true, sessionEpoch: 7 });
    await expect(
      new AccountStatus(users as unknown as UserRepository).allows(
        token({ sessionEpoch: undefined }),
      ),
    ).resolves.toBe(false);
  });

  it('reads the account at most once per TTL, and sees a disable once it has passed', async () => {
    stored({ active: true, sessionEpoch: 2 });
    await Promise.all([status.allows(token()), status.allows(token())]);
    now += ACCOUNT_STATE_TTL_MS - 1;
    await expect(status.allows(token())).resolves.toBe(true);
    expect(users.findState).toHaveBeenCalledTimes(1);
    stored({ active: false, sessionEpoch: 3 });
    now += 1;
    await expect(status.allows(token())).resolves.toBe(false);
    expect(users.findState).toHaveBeenCalledTimes(2);
  });

  it('reads again for a token issued after the kept state was read, rather than refuse it', async () => {
    // Roles changed by the CLI (or a password set on another instance) moved the epoch on to 3,
    // and the user signed in again within the TTL: the kept epoch 2 is stale, not the new token.
    stored({ active: true, sessionEpoch: 2 });
    await expect(status.allows(token())).resolves.toBe(true);
    stored({ active: true, sessionEpoch: 3 });
    await expect(status.allows(token({ sessionEpoch: 3 }))).resolves.toBe(true);
    await expect(status.allows(token())).resolves.toBe(false);
    expect(users.findState).toHaveBeenCalledTimes(2);
  });

  it('reads again for a token of an account kept as disabled, which another instance enabled', async () => {
    // A disable moves the epoch on, so a token of the kept epoch was issued after an enable.
    stored({ active: false, sessionEpoch: 3 });
    await expect(status.allows(token({ sessionEpoch: 2 }))).resolves.toBe(false);
    stored({ active: true, sessionEpoch: 3 });
    await expect(status.allows(token({ sessionEpoch: 3 }))).resolves.toBe(true);
    await expect(status.allows(token({ sessionEpoch: 2 }))).resolves.toBe(false);
    expect(users.findState).toHaveBeenCalledTimes(2);
  });

  it('does not keep a failed read', async () => {
    users.findState.mockRejectedValueOnce(new Error('connection lost'));
    await expect(status.allows(token())).rejects.toThrow('connection lost');
    stored({ active: true, sessionEpoch: 2 });
    await expect(status.allows(token())).resolves.toBe(true);
  });

  it("does not read anything for an identity provider's account", async () => {
    await expect(status.allows(token({ id: 'oidc:abc' }))).resolves.toBe(true);
    expect(users.findState).not.toHaveBeenCalled();
  });
});
