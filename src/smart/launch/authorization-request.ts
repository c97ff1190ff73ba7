import { formatGrant, grantAppScope } from '../../auth/apps/app-scopes.js';

/** PKCE S256: BASE64URL of a SHA-256 digest. */
const S256_CHALLENGE = /^[A-Za-z0-9_-]{43}$/;
const MAX_STATE = 1024;
const SINGLE = ['response_type', 'scope', 'state', 'aud', 'code_challenge', 'nonce', 'launch'];

/** An authorization request's parameters, once the app and its redirect URI are known. */
export interface CheckedRequest {
  /** The scope that will be granted: what was asked, within the app's registration. */
  scope: string;
  state: string;
  codeChallenge: string;
  nonce?: string;
  /** An EHR launch's value, to be opened by LaunchContexts. */
  launch?: string;
}

/** What goes back to the app's redirect URI instead of a code (RFC 6749 section 4.1.2.1). */
export interface RequestError {
  error: 'invalid_request' | 'unsupported_response_type' | 'invalid_scope';
  description: string;
  state?: string;
}

/**
 * A query parameter given once: its value, undefined when absent or empty, null when repeated
 * (RFC 6749 section 3.1: no parameter may be sent twice).
 */
export function single(query: Record<string, unknown>, name: string): string | undefined | null {
  const value = query[name];
  if (value === undefined || value === '') return undefined;
  return typeof value === 'string' ? value : null;
}

/**
 * Whether a POST to the authorization endpoint is an authorization request (SMART 2.0's
 * `authorize-post`: the app's parameters as a form, answered as the GET is) rather than the
 * sign-in form, which carries the sealed `request` and never a `response_type`.
 */
export function isAuthorizationRequest(body: unknown): boolean {
  if (body === null || typeof body !== 'object') return false;
  const fields = body as Record<string, unknown>;
  return fields['request'] === undefined && fields['response_type'] !== undefined;
}

/**
 * SMART App Launch's checks of an authorization request for a registered app: response_type
 * `code`, a state, the FHIR server it is for (`aud`), PKCE S256, at least one resource scope the
 * app is registered for, and for an EHR launch both the `launch` value and scope.
 */
export function checkAuthorizationRequest(
  query: Record<string, unknown>,
  registeredScope: string,
  fhirBase: string,
): CheckedRequest | RequestError {
  const state = single(query, 'state');
  const refuse = (error: RequestError['error'], description: string): RequestError => ({
    error,
    description,
    ...(typeof state === 'string' ? { state } : {}),
  });
  const repeated = SINGLE.find((name) => single(query, name) === null);
  if (repeated) return refuse('invalid_request', `${repeated} is given more than once`);
  if (single(query, 'response_type') !== 'code') {
    return refuse('unsupported_response_type', 'response_type must be code');
  }
  if (typeof state !== 'string' || state.length > MAX_STATE) {
    return refuse('invalid_request', `state is required (at most ${MAX_STATE} characters)`);
  }
  const nonce = single(query, 'nonce');
  if (typeof nonce === 'string' && nonce.length > MAX_STATE) {
    return refuse('invalid_request', `nonce has at most ${MAX_STATE} characters`);
  }
  const aud = single(query, 'aud');
  if (typeof aud !== 'string' || aud.replace(/\/$/, '') !== fhirBase) {
    return refuse('invalid_request', `aud must be this server's FHIR base URL, ${fhirBase}`);
  }
  const challenge = single(query, 'code_challenge');
  if (
    single(query, 'code_challenge_method') !== 'S256' ||
    typeof challenge !== 'string' ||
    !S256_CHALLENGE.test(challenge)
  ) {
    return refuse('invalid_request', 'PKCE is required: code_challenge with method S256');
  }
  const granted = grantAppScope(single(query, 'scope') ?? '', registeredScope);
  if (granted.resources.length === 0) {
    return refuse(
      'invalid_scope',
      'None of the resource scopes asked for is registered for the app',
    );
  }
  const launch = single(query, 'launch');
  if ((typeof launch === 'string') !== granted.launch.includes('launch')) {
    return refuse(
      'invalid_scope',
      'An EHR launch sends both its launch value and the launch scope (registered for the app)',
    );
  }
  return {
    scope: formatGrant(granted),
    state,
    codeChallenge: challenge,
    ...(typeof nonce === 'string' ? { nonce } : {}),
    ...(typeof launch === 'string' ? { launch } : {}),
  };
}
