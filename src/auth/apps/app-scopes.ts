import { AppError } from '../../common/errors/app-error.js';
import {
  formatGrantedScope,
  formatScope,
  grantedScopes,
  parseScopes,
  type SmartScope,
} from '../smart-scopes.js';

/**
 * Scopes of SMART App Launch other than resource scopes that CareVault grants: the context of
 * an EHR launch (launch), a patient chosen at sign-in (standalone launch, launch/patient), an OpenID Connect id_token naming the user (openid) and their
 * FHIR identity (fhirUser), and a refresh token (offline_access, or online_access, which ends
 * with the session's idle and absolute limits as every refresh token here does).
 */
export const LAUNCH_SCOPES = [
  'launch',
  'launch/patient',
  'openid',
  'fhirUser',
  'offline_access',
  'online_access',
] as const;

export interface AppScope {
  /** `patient/` and `user/` resource scopes. */
  resources: SmartScope[];
  /** Of LAUNCH_SCOPES. */
  launch: string[];
}

const isLaunchScope = (item: string): boolean =>
  (LAUNCH_SCOPES as readonly string[]).includes(item);

/** An app registration's scope, every item a patient/ or user/ resource scope or a launch one. */
export function registeredAppScope(scope: string): string {
  const items = scope.split(/\s+/).filter(Boolean);
  const wrong = items.filter((item) => {
    if (isLaunchScope(item)) return false;
    const [parsed] = parseScopes(item) ?? [];
    return parsed === undefined || parsed.context === 'system' || item.includes('?');
  });
  if (items.length === 0 || wrong.length > 0) {
    throw AppError.invalid(
      `scope: patient/ or user/ resource scopes (patient/*.rs, user/Observation.cruds), launch, launch/patient, openid, fhirUser, offline_access or online_access; not ${wrong.join(' ') || 'empty'}`,
    );
  }
  return format(appScopeOf(scope));
}

/**
 * What an app is granted of what it asked: the resource scopes both allow (narrowed as
 * grantedScopes does) and the launch scopes both name. Other scopes asked for (profile,
 * system/…) are not granted, which SMART allows a server to do: the token
 * response says what was.
 */
export function grantAppScope(requested: string, registered: string): AppScope {
  const asked = appScopeOf(requested);
  const allowed = appScopeOf(registered);
  const launch = asked.launch.filter((item) => allowed.launch.includes(item));
  return {
    resources: grantedScopes(asked.resources, allowed.resources),
    // fhirUser is a claim of the id_token: without openid there is nothing to carry it.
    launch: launch.includes('openid') ? launch : launch.filter((item) => item !== 'fhirUser'),
  };
}

/**
 * The scope a refreshed access token has when the client asks for one (RFC 6749 section 6,
 * SMART's refresh): the grant's, or narrower, in the words asked; undefined when an item asked
 * for is not within the grant (a wider one, an unknown one). The refresh token keeps the grant.
 */
export function narrowedGrant(granted: string, asked: string): string | undefined {
  const grant = appScopeOf(granted);
  const items = [...new Set(asked.split(/\s+/).filter(Boolean))];
  const want = appScopeOf(asked);
  if (items.length === 0 || want.launch.length + want.resources.length !== items.length) {
    return undefined;
  }
  if (!want.launch.every((item) => grant.launch.includes(item))) return undefined;
  // Within when the grant's scopes that cover its type (the same type, or `*`; only `*`
  // covers `*`) allow every permission it asks, together: a grant of `patient/*.rs
  // patient/Observation.rs` allows `patient/Observation.rs` twice over.
  const within = want.resources.every((one) => {
    const allowed = new Set(
      grant.resources
        .filter(
          (held) => held.context === one.context && (held.type === '*' || held.type === one.type),
        )
        .flatMap((held) => [...held.permissions]),
    );
    return [...one.permissions].every((permission) => allowed.has(permission));
  });
  return within ? formatGrant(want) : undefined;
}

/** A registration's scope, its resource scopes in SMART v2 letters. */
export function format(scope: AppScope): string {
  return [...scope.launch, ...scope.resources.map(formatScope)].join(' ');
}

/** A grant's scope, each resource scope in the words the app asked in (formatGrantedScope). */
export function formatGrant(scope: AppScope): string {
  return [...scope.launch, ...scope.resources.map(formatGrantedScope)].join(' ');
}

function appScopeOf(scope: string): AppScope {
  const items = [...new Set(scope.split(/\s+/).filter(Boolean))];
  return {
    resources: (parseScopes(items.filter((item) => !item.includes('?')).join(' ')) ?? []).filter(
      (item) => item.context !== 'system',
    ),
    launch: items.filter(isLaunchScope),
  };
}
