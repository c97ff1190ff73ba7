import type { AppConfig } from '../config/config.js';
import { assertNewPassword, belowPasswordHash, PasswordHasher } from './password.js';

describe('assertNewPassword', () => {
  const refusal = (password: string, username = 'drlee'): string | undefined => {
    try {
      assertNewPassword(password, username);
      return undefined;
    } catch (error) {
      return (error as Error).message;
    }
  };

  it('takes a long, varied password', () => {
    expect(refusal('Correct-horse-battery-9')).toBeUndefined();
    expect(refusal('a new long passphrase')).toBeUndefined();
  });

  it('refuses what length alone lets through: short, repetitive, or the username', () => {
    expect(refusal('short-pw')).toBe('password must have at least 12 characters');
    for (const repetitive of [' '.repeat(12), 'a'.repeat(12), 'abababababab', 'AaAa1111aaaa']) {
      expect(refusal(repetitive)).toMatch(/^password is too repetitive/);
    }
    expect(refusal('DrLee-2026-winter')).toBe('password must not contain the username');
    // A name of one or two letters is in too many passwords to refuse them.
    expect(refusal('qa-checks-2026!', 'qa')).toBeUndefined();
  });
});

describe('PasswordHasher', () => {
  const hasher = (passwordHashTestFast: boolean) =>
    new PasswordHasher({ passwordHashTestFast } as AppConfig);

  it('hashes with Argon2id at 64 MiB and 3 passes, unless told it runs a test suite', async () => {
    const hash = await hasher(false).hash('Correct-horse-battery-9');
    expect(hash).toMatch(/^\$argon2id\$v=19\$m=65536,p=1,t=3\$/);
    expect(belowPasswordHash(hash.split('$')[3]!)).toBe(false);
    const fast = await hasher(true).hash('Correct-horse-battery-9');
    expect(fast).toMatch(/^\$argon2id\$v=19\$m=1024,p=1,t=1\$/);
    expect(belowPasswordHash(fast.split('$')[3]!)).toBe(true);
    // A check follows the stored hash's own parameters, whichever the hasher's are.
    expect(await hasher(true).verify(hash, 'Correct-horse-battery-9')).toBe(true);
    expect(await hasher(false).verify(fast, 'Correct-horse-battery-8')).toBe(false);
  });

  it('counts fewer passes, or less memory, as below the default', () => {
    expect(belowPasswordHash('m=65536,t=2,p=1')).toBe(true);
    expect(belowPasswordHash('m=19456,t=3,p=1')).toBe(true);
    expect(belowPasswordHash('m=131072,t=4,p=2')).toBe(false);
  });
});
