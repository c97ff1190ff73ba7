import { randomUUID } from 'node:crypto';
import { generate } from 'otplib';
import { UsersService } from '../../src/auth/users.service.js';
import type { Role } from '../../src/auth/roles.js';
import { authorizedHttp, http, type HttpFn } from './http.js';
import type { TestApp } from './test-app.js';

export interface TestUser {
  id: string;
  username: string;
  password: string;
}

/** Creates a user through the same service the admin CLI uses. */
export async function createUser(
  testApp: TestApp,
  roles: Role[],
  username = `u-${randomUUID().slice(0, 12)}`,
): Promise<TestUser> {
  const password = `pw-${randomUUID()}`;
  const user = await testApp.app.get(UsersService).create(username, roles, password);
  return { id: user.id, username: user.username, password };
}

/** Logs in over HTTP and returns the token response. */
export async function login(
  testApp: TestApp,
  user: TestUser,
): Promise<{ access_token: string; refresh_token: string }> {
  const res = await http('POST', `${testApp.url}/auth/login`, {
    body: { username: user.username, password: user.password },
    headers: { 'content-type': 'application/json' },
  });
  if (res.status !== 200 || !res.body.access_token) {
    throw new Error(`login failed: ${res.status} ${res.text}`);
  }
  return res.body;
}

/** A fresh user with these roles, logged in: its access token. */
export async function tokenFor(testApp: TestApp, ...roles: Role[]): Promise<string> {
  return (await login(testApp, await createUser(testApp, roles))).access_token;
}

/** The TOTP code for the 30-second step `offset` steps from now. */
export function totpCode(secret: string, offset = 0): Promise<string> {
  return generate({ secret, epoch: Math.floor(Date.now() / 1000) + offset * 30 });
}

/**
 * Enrols the user in MFA and activates it with the current code; the next login needs MFA.
 * Returns the TOTP secret.
 */
export async function enableMfa(testApp: TestApp, user: TestUser): Promise<string> {
  const { access_token: token } = await login(testApp, user);
  const authorization = `Bearer ${token}`;
  const enrolled = await http('POST', `${testApp.url}/auth/mfa/enroll`, {
    headers: { authorization },
  });
  if (enrolled.status !== 200) throw new Error(`enroll failed: ${enrolled.status}`);
  const secret: string = enrolled.body.secret;
  const activated = await http('POST', `${testApp.url}/auth/mfa/activate`, {
    body: { code: await totpCode(secret) },
    headers: { authorization, 'content-type': 'application/json' },
  });
  if (activated.status !== 200) throw new Error(`activate failed: ${activated.status}`);
  return secret;
}

/**
 * Password then TOTP login for a user with MFA. Uses the next step's code (accepted within the
 * allowed drift) because the current step may already have been used.
 */
export async function loginWithMfa(
  testApp: TestApp,
  user: TestUser,
  secret: string,
  offset = 1,
): Promise<{ access_token: string; refresh_token: string }> {
  const first = await http('POST', `${testApp.url}/auth/login`, {
    body: { username: user.username, password: user.password },
    headers: { 'content-type': 'application/json' },
  });
  if (first.body?.mfa_required !== true) throw new Error(`no MFA challenge: ${first.text}`);
  const second = await http('POST', `${testApp.url}/auth/login/mfa`, {
    body: { mfa_token: first.body.mfa_token, code: await totpCode(secret, offset) },
    headers: { 'content-type': 'application/json' },
  });
  if (second.status !== 200) throw new Error(`MFA login failed: ${second.status} ${second.text}`);
  return second.body;
}

/**
 * A client of a token exchanged for narrower SMART scopes (`POST /auth/token/scoped`), with a
 * patient in context when given: what a patient's app or a scoped integration holds.
 */
export async function scopedHttp(
  testApp: TestApp,
  token: string,
  scope: string,
  patient?: string,
): Promise<HttpFn> {
  const res = await http('POST', `${testApp.url}/auth/token/scoped`, {
    body: { scope, ...(patient ? { patient } : {}) },
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
  });
  if (res.status !== 200) {
    throw new Error(`token exchange for ${scope}: ${res.status} ${JSON.stringify(res.body)}`);
  }
  return authorizedHttp(res.body.access_token as string);
}
