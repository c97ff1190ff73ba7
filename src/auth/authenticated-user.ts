import type { Role } from './roles.js';
import type { SmartScope } from './smart-scopes.js';

/** Who made a request, from a verified access token. */
export interface AuthenticatedUser {
  id: string;
  username: string;
  roles: Role[];
  /**
   * Authentication methods of the login: `pwd`, and `otp` after MFA; `swk` for a backend
   * client's assertion signed with its private key (RFC 8176).
   */
  amr: string[];
  /** When the user authenticated (seconds since the epoch). */
  authTime: number;
  /** SMART resource scopes of the token; undefined means the roles' rights alone. */
  scopes?: SmartScope[];
  /** The patient in context (the token's `patient` claim), for `patient/` scopes. */
  patient?: string;
  /** The SMART backend client the token was issued to (client_credentials grant). */
  clientId?: string;
  /** When the presented token expires (seconds since the epoch). */
  expiresAt?: number;
  /**
   * The account's session epoch when the token was issued (UserEntity.sessionEpoch): a token of
   * an earlier epoch is refused (AccountStatus).
   */
  sessionEpoch?: number;
  /**
   * The sign-in session (refresh token family) the token was issued in: once the session ends
   * (logout, a replayed refresh token), the token is refused (SessionStatus).
   */
  sessionId?: string;
  /**
   * An account of this process that no token can name (the HL7 feed's): it writes what its
   * senders send onto restricted records as well, and shows no one what it reads.
   */
  internal?: true;
  /**
   * An account that loads records as another system held them (`cli import`): an export holds
   * records of patients a merge retired, which no one else may add (RetiredPatients).
   */
  loadsRecords?: true;
}

/** How recent an MFA must be for step-up operations (user administration). */
export const STEP_UP_MAX_AGE_SECONDS = 300;

/**
 * Step-up: a person's TOTP login, or a backend client's signed assertion (possession of its
 * private key), in the last five minutes. Clients never act in the roles whose step-up routes
 * are about people (user administration, break-glass: see backend-clients.service.ts), so for
 * them this opens bulk export alone.
 */
export function hasRecentStepUp(user: AuthenticatedUser, nowSeconds = Date.now() / 1000): boolean {
  return (
    (user.amr.includes('otp') || (user.clientId !== undefined && user.amr.includes('swk'))) &&
    nowSeconds - user.authTime <= STEP_UP_MAX_AGE_SECONDS
  );
}
