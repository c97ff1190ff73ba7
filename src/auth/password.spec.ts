import { assertNewPassword } from './password.js';

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
