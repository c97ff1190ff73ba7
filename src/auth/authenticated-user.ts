import type { Role } from './roles.js';
import type { SmartScope } from './smart-scopes.js';

/** Who made a request, from a verified access token. */
export interface AuthenticatedUser {
  id: string;
  username: string;
  roles: Role[];
  /** Authentication methods of the login: `pwd`, and `otp` after MFA. */
  amr: string[];
  /** When the user authenticated (seconds since the epoch). */
  authTime: number;
  /** SMART resource scopes of the token; undefined means the roles' rights alone. */
  scopes?: SmartScope[];
  /** The patient in context (the token's `patient` claim), for `patient/` scopes. */
  patient?: string;
  /** When the presented token expires (seconds since the epoch). */
  expiresAt?: number;
}

/** How recent an MFA must be for step-up operations (user administration). */
export const STEP_UP_MAX_AGE_SECONDS = 300;

export function hasRecentMfa(user: AuthenticatedUser, nowSeconds = Date.now() / 1000): boolean {
  return user.amr.includes('otp') && nowSeconds - user.authTime <= STEP_UP_MAX_AGE_SECONDS;
}
