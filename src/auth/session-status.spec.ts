import { jest } from '@jest/globals';
import type { AuthenticatedUser } from './authenticated-user.js';
import type { RefreshTokenRepository } from './refresh-token.repository.js';
import { SessionStatus } from './session-status.js';

const FAMILY = '5d0c6a43-8d2e-4a8f-9b1e-2f3c4d5e6f70';

describe('SessionStatus', () => {
  let families: jest.Mocked<Pick<RefreshTokenRepository, 'isFamilyLive'>>;
  const token = (sessionId?: string): AuthenticatedUser => ({
    id: '7f1c2a9e-4a53-4c1e-9a57-3c1f0e2b8d11',
    username: 'doc',
    roles: ['doctor'],
    amr: ['pwd'],
    authTime: 0,
    ...(sessionId !== undefined ? { sessionId } : {}),
  });
  const status = () => new SessionStatus(families as unknown as RefreshTokenRepository);

  beforeEach(() => {
    families = { isFamilyLive: jest.fn() };
  });

  it('reads nothing for a token of no session (a backend client, an app without refresh)', async () => {
    await expect(status().allows(token())).resolves.toBe(true);
    expect(families.isFamilyLive).not.toHaveBeenCalled();
  });

  it('allows a token while its session goes on, and not once it ended', async () => {
    families.isFamilyLive.mockResolvedValue(true);
    await expect(status().allows(token(FAMILY))).resolves.toBe(true);
    families.isFamilyLive.mockResolvedValue(false);
    await expect(status().allows(token(FAMILY))).resolves.toBe(false);
    await expect(status().allows(token('not-a-uuid'))).resolves.toBe(false);
  });
});
