import { Injectable } from '@nestjs/common';
import argon2 from 'argon2';
import { AppError } from '../common/errors/app-error.js';
import { AppConfig } from '../config/config.js';

/**
 * Argon2id above the OWASP minimum (19 MiB, t=2, p=1): 64 MiB, 3 passes, 1 lane. About 0.1 s per
 * check on the reference machine (0.4 s on the 2-core test machine), which is also the
 * brute-force cost per guess.
 */
export const PASSWORD_HASH = { memoryCost: 65_536, timeCost: 3, parallelism: 1 } as const;
/** PASSWORD_HASH_TEST_FAST (test suites only, refused in production): 1 MiB, 1 pass, ~1 ms. */
const TEST_FAST = { memoryCost: 1024, timeCost: 1, parallelism: 1 } as const;

/**
 * Whether an Argon2id hash's parameters (`m=65536,p=1,t=3`, its fourth `$` field) spend less
 * memory or fewer passes than PASSWORD_HASH: hashed under PASSWORD_HASH_TEST_FAST or older settings.
 */
export function belowPasswordHash(parameters: string): boolean {
  const values = new Map(parameters.split(',').map((pair) => pair.split('=') as [string, string]));
  const at = (name: string) => Number(values.get(name) ?? 0);
  return at('m') < PASSWORD_HASH.memoryCost || at('t') < PASSWORD_HASH.timeCost;
}

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

/**
 * Hashes and checks passwords. A check reads its parameters from the stored hash, so accounts
 * hashed under other parameters still sign in; compliance:report counts those below
 * PASSWORD_HASH.
 */
@Injectable()
export class PasswordHasher {
  private readonly options: argon2.HashOptions & { raw?: false };
  private dummyHash: Promise<string> | undefined;

  constructor(config: AppConfig) {
    const cost = config.passwordHashTestFast ? TEST_FAST : PASSWORD_HASH;
    this.options = { type: argon2.argon2id, ...cost };
  }

  hash(password: string): Promise<string> {
    return argon2.hash(password, this.options);
  }

  verify(hash: string, password: string): Promise<boolean> {
    return argon2.verify(hash, password);
  }

  /**
   * Spends the same time as a real check, for a username that does not exist, so response timing
   * does not reveal which usernames do.
   */
  async verifyAgainstDummy(password: string): Promise<void> {
    this.dummyHash ??= this.hash('carevault-dummy-password-for-timing');
    await argon2.verify(await this.dummyHash, password);
  }
}
