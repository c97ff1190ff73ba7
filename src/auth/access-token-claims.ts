import type { AuthenticatedUser } from './authenticated-user.js';
import { isRole } from './roles.js';
import { smartContext } from './smart-scopes.js';

export interface AccessTokenClaims {
  sub?: unknown;
  exp?: unknown;
  username?: unknown;
  roles?: unknown;
  amr?: unknown;
  auth_time?: unknown;
  scope?: unknown;
  patient?: unknown;
  client_id?: unknown;
  session_epoch?: unknown;
  sid?: unknown;
}

/** The user of a verified access token's claims; undefined when a required claim is missing. */
export function userOfClaims(claims: AccessTokenClaims): AuthenticatedUser | undefined {
  const { sub, exp, username, roles, amr, auth_time: authTime, scope, patient } = claims;
  const clientId = claims.client_id;
  if (
    typeof sub !== 'string' ||
    typeof exp !== 'number' ||
    typeof username !== 'string' ||
    typeof authTime !== 'number' ||
    !Array.isArray(roles) ||
    !Array.isArray(amr)
  ) {
    return undefined;
  }
  return {
    id: sub,
    username,
    roles: roles.filter(
      (role): role is AuthenticatedUser['roles'][number] =>
        typeof role === 'string' && isRole(role),
    ),
    amr: amr.filter((method): method is string => typeof method === 'string'),
    authTime,
    expiresAt: exp,
    ...smartContext(scope, patient),
    ...(typeof clientId === 'string' ? { clientId } : {}),
    ...(typeof claims.session_epoch === 'number' ? { sessionEpoch: claims.session_epoch } : {}),
    ...(typeof claims.sid === 'string' ? { sessionId: claims.sid } : {}),
  };
}
