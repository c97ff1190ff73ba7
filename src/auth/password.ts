import argon2 from 'argon2';
import { AppError } from '../common/errors/app-error.js';

/**
 * Argon2id above the OWASP minimum (19 MiB, t=2, p=1): 64 MiB, 3 passes, 1 lane. About 0.1 s per
 * check on the reference machine, which is also the brute-force cost per guess.
 */
const OPTIONS = { type: argon2.argon2id, memoryCost: 65_536, timeCost: 3, parallelism: 1 } as const;

export const MIN_PASSWORD_LENGTH = 12;
const MIN_DISTINCT_CHARACTERS = 5;

/**
 * The rule every password being set meets (a new account, a change, an administrator's reset):
 * 12 characters at least, and none of what NIST SP 800-63B (5.1.1.2) has verifiers refuse that
 * length alone lets through: repetitive strings (twelve spaces, `aaaaaaaaaaaa`, `abababababab`)
 * and the account's own name, the first guesses of anyone who knows it.
 */
export function assertNewPassword(password: string, username: string, field = 'password'): void {
  const refuse = (why: string) => AppError.invalid(`${field} ${why}`, [field]);
  if (password.length < MIN_PASSWORD_LENGTH) {
    throw refuse(`must have at least ${MIN_PASSWORD_LENGTH} characters`);
  }
  if (new Set(password.toLowerCase()).size < MIN_DISTINCT_CHARACTERS) {
    throw refuse(`is too repetitive: use at least ${MIN_DISTINCT_CHARACTERS} different characters`);
  }
  if (username.length >= 3 && password.toLowerCase().includes(username.toLowerCase())) {
    throw refuse('must not contain the username');
  }
}

export function hashPassword(password: string): Promise<string> {
  return argon2.hash(password, OPTIONS);
}

export function verifyPassword(hash: string, password: string): Promise<boolean> {
  return argon2.verify(hash, password);
}

let dummyHash: Promise<string> | undefined;

/**
 * Spends the same time as a real check, for a username that does not exist, so response timing
 * does not reveal which usernames do.
 */
export async function verifyAgainstDummy(password: string): Promise<void> {
  dummyHash ??= hashPassword('carevault-dummy-password-for-timing');
  await argon2.verify(await dummyHash, password);
}
