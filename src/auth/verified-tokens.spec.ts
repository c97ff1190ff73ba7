import type { AuthenticatedUser } from './authenticated-user.js';
import { VerifiedTokens } from './verified-tokens.js';

function user(expiresInSeconds: number): AuthenticatedUser {
  return {
    id: 'u1',
    username: 'clinician',
    roles: ['doctor'],
    amr: ['pwd'],
    authTime: Math.floor(Date.now() / 1000),
    expiresAt: Math.floor(Date.now() / 1000) + expiresInSeconds,
  };
}

describe('VerifiedTokens', () => {
  it('gives back a copy of the user of a token verified before', () => {
    const tokens = new VerifiedTokens();
    const verified = user(600);
    tokens.remember('token-a', verified);
    const known = tokens.get('token-a', 0);
    expect(known).toEqual(verified);
    expect(known).not.toBe(verified);
    expect(tokens.get('token-b', 0)).toBeUndefined();
  });

  it('refuses a remembered token once it has expired', () => {
    const tokens = new VerifiedTokens();
    tokens.remember('expired', user(-1));
    tokens.remember('no-expiry', { ...user(600), expiresAt: undefined });
    expect(tokens.get('expired', 0)).toBeUndefined();
    expect(tokens.get('no-expiry', 0)).toBeUndefined();
  });

  it('forgets the oldest tokens first when full', () => {
    const tokens = new VerifiedTokens();
    for (let i = 0; i <= 10_000; i++) tokens.remember(`token-${i}`, user(600));
    expect(tokens.get('token-0', 0)).toBeUndefined();
    expect(tokens.get('token-1', 0)).toBeDefined();
    expect(tokens.get('token-10000', 0)).toBeDefined();
  });

  it('forgets every answer when the accepted signing keys change', () => {
    const tokens = new VerifiedTokens();
    tokens.remember('token-a', user(600));
    expect(tokens.get('token-a', 0)).toBeDefined();
    expect(tokens.get('token-a', 1)).toBeUndefined();
  });
});
