import { Controller, Get, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { createHmac, generateKeyPairSync, randomUUID } from 'node:crypto';
import { exportJWK, SignJWT, type JWTPayload } from 'jose';
import { DataSource } from 'typeorm';
import { AppModule } from '../../src/app.module.js';
import {
  APP_PERMISSION_KEY,
  FHIR_INTERACTION_KEY,
  PUBLIC_KEY,
} from '../../src/auth/permission.decorators.js';
import {
  AUTHENTICATED_PREFIXES,
  PUBLIC_FHIR_PATHS,
  PUBLIC_PATHS,
} from '../../src/auth/refused-before-authentication.js';
import { SigningKeys } from '../../src/auth/signing-keys.js';
import { UserRepository } from '../../src/auth/user.repository.js';
import { UsersService } from '../../src/auth/users.service.js';
import { UnitOfWork } from '../../src/database/unit-of-work.js';
import { createHttpAdapter } from '../../src/common/http/http-adapter.js';
import { setupApp } from '../../src/common/http/setup-app.js';
import { AppConfig, readEnv } from '../../src/config/config.js';
import { buildPatient } from '../support/factories.js';
import {
  createUser,
  enableMfa,
  login,
  loginWithMfa,
  tokenFor,
  totpCode,
  type TestUser,
} from '../support/auth.js';
import { withEnv } from '../support/env.js';
import { authorizedHttp, http, type HttpResult } from '../support/http.js';
import { untilWaitingForLock } from '../support/locks.js';
import { BUILT, childEnv, runNode } from '../support/process.js';
import { declaredRoutes } from '../support/routes.js';
import { createTestApp, type TestApp } from '../support/test-app.js';

const b64 = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');
const json = { 'content-type': 'application/json' };

/** A JWT signed with HMAC-SHA256 under any secret: what key-confusion attacks send. */
function hmacToken(header: object, payload: object, secret: string): string {
  const input = `${b64(header)}.${b64(payload)}`;
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
}

describe('attacks a hospital reviewer tries first', () => {
  let testApp: TestApp;
  let restoreEnv: () => void;
  let patientUrl: string;
  let doctor: TestUser;
  let claims: JWTPayload & Record<string, unknown>;
  let kid: string;

  beforeAll(async () => {
    // A short lockout keeps the brute-force test quick.
    restoreEnv = withEnv({ LOGIN_LOCKOUT_SECONDS: '2' });
    testApp = await createTestApp();
    doctor = await createUser(testApp, ['doctor']);
    const { access_token } = await login(testApp, doctor);
    const created = await authorizedHttp(access_token)('POST', `${testApp.url}/fhir/Patient`, {
      body: buildPatient(),
    });
    patientUrl = `${testApp.url}/fhir/Patient/${created.body.id}`;
    const [header, payload] = access_token
      .split('.')
      .slice(0, 2)
      .map((part) => JSON.parse(Buffer.from(part, 'base64url').toString('utf8')));
    claims = payload;
    kid = header.kid;
  });

  afterAll(async () => {
    await testApp.close();
    restoreEnv();
  });

  const read = (token: string) =>
    http('GET', patientUrl, { headers: { authorization: `Bearer ${token}` } });

  /** Signs with the server's own key: only the claim or header under test is wrong. */
  async function serverSigned(
    payload: Record<string, unknown>,
    header: Record<string, unknown> = {},
  ): Promise<string> {
    const { privateKey } = testApp.app.get(SigningKeys).current;
    return new SignJWT(payload)
      .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid, ...header })
      .sign(privateKey);
  }

  describe('forged and tampered access tokens are 401', () => {
    it('control: the genuine token reads the record, and a re-signed copy of it does too', async () => {
      expect((await read(await serverSigned(claims))).status).toBe(200);
    });

    it('alg: none', async () => {
      const token = `${b64({ alg: 'none', typ: 'at+jwt', kid })}.${b64(claims)}.`;
      expect((await read(token)).status).toBe(401);
    });

    it('HS256 signed with the server public key (key confusion), as PEM and as JWK', async () => {
      const jwks = (await http('GET', `${testApp.url}/.well-known/jwks.json`)).body;
      const pem = testApp.app
        .get(SigningKeys)
        .current.publicKey.export({ type: 'spki', format: 'pem' })
        .toString();
      for (const secret of [pem, JSON.stringify(jwks.keys[0])]) {
        const token = hmacToken({ alg: 'HS256', typ: 'at+jwt', kid }, claims, secret);
        expect((await read(token)).status).toBe(401);
      }
    });

    it('an unknown kid, and another key under our kid', async () => {
      expect((await read(await serverSigned(claims, { kid: 'not-our-key' }))).status).toBe(401);
      const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      const forged = await new SignJWT(claims)
        .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid })
        .sign(privateKey);
      expect((await read(forged)).status).toBe(401);
    });

    it('a key embedded in the header (jwk) or fetched from a URL (jku)', async () => {
      const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      const jwk = await exportJWK(publicKey);
      const embedded = await new SignJWT(claims)
        .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid, jwk })
        .sign(privateKey);
      expect((await read(embedded)).status).toBe(401);
      // Even signed with our key, a token naming an outside key source is refused.
      expect(
        (await read(await serverSigned(claims, { jku: 'https://evil.example/jwks.json' }))).status,
      ).toBe(401);
    });

    it('expired, missing exp, wrong audience, wrong issuer, wrong type, tampered payload', async () => {
      const now = Math.floor(Date.now() / 1000);
      const withoutExp = { ...claims };
      delete withoutExp.exp;
      const cases: Record<string, string> = {
        expired: await serverSigned({ ...claims, iat: now - 3600, exp: now - 60 }),
        'missing exp': await serverSigned(withoutExp),
        'wrong audience': await serverSigned({ ...claims, aud: 'another-api' }),
        'wrong issuer': await serverSigned({ ...claims, iss: 'https://evil.example' }),
        'wrong type': await serverSigned(claims, { typ: 'JWT' }),
        tampered: (() => {
          const [header, , signature] = ('' + tokens.genuine).split('.');
          return `${header}.${b64({ ...claims, roles: ['admin', 'doctor'] })}.${signature}`;
        })(),
      };
      for (const [name, token] of Object.entries(cases)) {
        const res = await read(token);
        expect({ name, status: res.status }).toEqual({ name, status: 401 });
        // RFC 6750 section 3.1: the client learns to get a new token, not which check failed.
        expect(res.headers.get('www-authenticate')).toBe(
          'Bearer realm="carevault", error="invalid_token"',
        );
      }
      const none = await http('GET', `${testApp.url}/fhir/Patient`);
      expect(none.status).toBe(401);
      expect(none.headers.get('www-authenticate')).toBe('Bearer realm="carevault"');
    });

    it('an MFA step token used as an access token', async () => {
      const user = await createUser(testApp, ['doctor']);
      await enableMfa(testApp, user);
      const challenge = await http('POST', `${testApp.url}/auth/login`, {
        body: { username: user.username, password: user.password },
        headers: json,
      });
      expect(challenge.body.mfa_required).toBe(true);
      expect((await read(challenge.body.mfa_token)).status).toBe(401);
    });
  });

  const tokens: { genuine?: string } = {};
  beforeAll(async () => {
    tokens.genuine = (await login(testApp, doctor)).access_token;
  });

  const refresh = (token: string) =>
    http('POST', `${testApp.url}/auth/refresh`, {
      body: { refresh_token: token },
      headers: json,
    });

  describe('sessions', () => {
    it('stops the access token of a disabled account, or one given a new password, within seconds', async () => {
      const users = testApp.app.get(UsersService);
      const accounts = testApp.app.get(UserRepository);
      /**
       * How long the token still reads after `end`, done in the database as another instance or
       * the CLI would: this instance learns it when its cached state of the account expires.
       */
      async function refusedAfter(
        end: (user: { id: string; username: string }) => Promise<unknown>,
      ): Promise<number> {
        const user = await createUser(testApp, ['doctor']);
        const { access_token } = await login(testApp, user);
        expect((await read(access_token)).status).toBe(200);
        await end(user);
        const ended = Date.now();
        while (Date.now() - ended < 8_000) {
          if ((await read(access_token)).status === 401) return Date.now() - ended;
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
        return Infinity;
      }
      /** Enabled again, the account starts afresh: its token from before the disable stays refused. */
      async function reenabled(): Promise<void> {
        const user = await createUser(testApp, ['doctor']);
        const { access_token } = await login(testApp, user);
        expect((await read(access_token)).status).toBe(200);
        await users.disable(user.username);
        await users.enable(user.username);
        await new Promise((resolve) => setTimeout(resolve, 5_500));
        expect((await read(access_token)).status).toBe(401);
        expect((await read((await login(testApp, user)).access_token)).status).toBe(200);
      }
      // The three accounts are apart, so their waits on the status cache overlap (they took 17 s
      // one after the other).
      const [disabled, newPassword] = await Promise.all([
        refusedAfter(({ id }) => accounts.endSessions(id, { active: false })),
        refusedAfter(({ id }) => accounts.endSessions(id, { passwordHash: 'replaced' })),
        reenabled(),
      ]);
      // Bounded by the status cache's 5 s (see AccountStatus), not by the token's 15 minutes.
      expect(disabled).toBeLessThan(6_000);
      expect(newPassword).toBeLessThan(6_000);
      // Done by this instance, at once: its cached state of the account was read afresh (the
      // token read on for up to 5 s until 2026-12-07).
      for (const end of [
        (username: string) => users.disable(username),
        (username: string) => users.setPassword(username, `new-${randomUUID()}`),
        (username: string) => users.resetMfa(username),
      ]) {
        const user = await createUser(testApp, ['doctor']);
        const { access_token } = await login(testApp, user);
        expect((await read(access_token)).status).toBe(200);
        await end(user.username);
        expect((await read(access_token)).status).toBe(401);
      }
    });

    it('stops a token issued before tokens carried the session epoch once the password is reset', async () => {
      // Such a token counts as the epoch accounts started in (0): until 2026-12-06 it skipped the
      // epoch check, and read on after a password or MFA reset until it expired.
      const users = testApp.app.get(UsersService);
      const user = await createUser(testApp, ['doctor']);
      const { access_token } = await login(testApp, user);
      const payload = JSON.parse(
        Buffer.from(access_token.split('.')[1]!, 'base64url').toString('utf8'),
      ) as Record<string, unknown>;
      expect(payload['session_epoch']).toBe(0);
      // Nor the session id, which came after it.
      delete payload['session_epoch'];
      delete payload['sid'];
      const old = await serverSigned(payload);
      expect((await read(old)).status).toBe(200);
      await users.setPassword(user.username, `new-${randomUUID()}`);
      const ended = Date.now();
      let status = 200;
      while (status === 200 && Date.now() - ended < 8_000) {
        await new Promise((resolve) => setTimeout(resolve, 200));
        status = (await read(old)).status;
      }
      expect(status).toBe(401);
    });

    it('rotates refresh tokens; replaying a spent one revokes the whole family', async () => {
      const first = await login(testApp, doctor);
      const second = await refresh(first.refresh_token);
      expect(second.status).toBe(200);
      expect(second.body.refresh_token).not.toBe(first.refresh_token);
      // Read with just before: the session's state is cached live, as in a browser in use.
      expect((await read(second.body.access_token as string)).status).toBe(200);
      // The thief replays the spent token: refused, and the session is over for everyone.
      expect((await refresh(first.refresh_token)).status).toBe(401);
      expect((await refresh(second.body.refresh_token)).status).toBe(401);
      // Its access tokens too, whichever of the two holds them (RFC 6819 5.2.2.3, OAuth 2.1).
      expect((await read(first.access_token)).status).toBe(401);
      expect((await read(second.body.access_token as string)).status).toBe(401);
    });

    it('ends a session at logout, after the idle limit and after the absolute limit', async () => {
      const loggedOut = await login(testApp, doctor);
      expect((await read(loggedOut.access_token)).status).toBe(200);
      const other = await login(testApp, doctor);
      expect(
        (
          await http('POST', `${testApp.url}/auth/logout`, {
            body: { refresh_token: loggedOut.refresh_token },
            headers: json,
          })
        ).status,
      ).toBe(204);
      // The access token of the session ends with it (a shared workstation: whoever sits down
      // next must not read on with it), at once on the instance that took the logout: it read
      // on for up to the status cache's 5 s, which it had just filled. Another session goes on.
      expect((await read(loggedOut.access_token)).status).toBe(401);
      expect((await refresh(loggedOut.refresh_token)).status).toBe(401);
      expect((await read(other.access_token)).status).toBe(200);
      // However the header is written: with two spaces (RFC 6750 allows them) or with what
      // passport-jwt's reading took and the guard's did not, the token read on until
      // 2026-12-06, its session's end unchecked.
      for (const header of [
        `Bearer  ${loggedOut.access_token}`,
        `Bearer\t${loggedOut.access_token}`,
        `Bearer ${loggedOut.access_token} x`,
        `bearer ${loggedOut.access_token}`,
      ]) {
        const res = await http('GET', patientUrl, { headers: { authorization: header } });
        expect({ header, status: res.status }).toEqual({ header, status: 401 });
      }
      expect(
        (
          await http('GET', patientUrl, {
            headers: { authorization: `Bearer  ${other.access_token}` },
          })
        ).status,
      ).toBe(200);

      const dataSource = testApp.app.get(DataSource);
      for (const column of ['expires_at', 'absolute_expires_at']) {
        const session = await login(testApp, doctor);
        const { createHash } = await import('node:crypto');
        const hash = createHash('sha256').update(session.refresh_token).digest('hex');
        await dataSource.query(
          `UPDATE refresh_token SET ${column} = now() - interval '1 second' WHERE token_hash = $1`,
          [hash],
        );
        expect({ column, status: (await refresh(session.refresh_token)).status }).toEqual({
          column,
          status: 401,
        });
      }
    });

    it('stops a disabled user at the next refresh and at login; enabled again, only new sign-ins work', async () => {
      const user = await createUser(testApp, ['nurse']);
      const session = await login(testApp, user);
      const admin = await createUser(testApp, ['admin']);
      const secret = await enableMfa(testApp, admin);
      const adminHttp = authorizedHttp((await loginWithMfa(testApp, admin, secret)).access_token);
      expect(
        (await adminHttp('POST', `${testApp.url}/admin/users/${user.username}/disable`)).status,
      ).toBe(200);
      expect((await refresh(session.refresh_token)).status).toBe(401);
      const again = await http('POST', `${testApp.url}/auth/login`, {
        body: { username: user.username, password: user.password },
        headers: json,
      });
      expect(again.status).toBe(401);

      const enabled = await adminHttp('POST', `${testApp.url}/admin/users/${user.username}/enable`);
      expect(enabled.body).toMatchObject({ id: user.id, active: true });
      expect((await refresh(session.refresh_token)).status).toBe(401);
      const back = await login(testApp, user);
      expect((await refresh(back.refresh_token)).status).toBe(200);
      // Not their own account: that would end the administrator's sessions with no way back
      // but the CLI.
      for (const name of [admin.username, admin.username.toUpperCase()]) {
        const own = await adminHttp('POST', `${testApp.url}/admin/users/${name}/disable`);
        expect(own.status).toBe(409);
      }
      expect((await adminHttp('GET', `${testApp.url}/admin/users`)).status).toBe(200);
    });
  });

  describe('passwords and MFA', () => {
    it('accepts a TOTP code once only', async () => {
      const user = await createUser(testApp, ['doctor']);
      const secret = await enableMfa(testApp, user);
      const code = await totpCode(secret, 1);
      const step = async () =>
        (
          await http('POST', `${testApp.url}/auth/login`, {
            body: { username: user.username, password: user.password },
            headers: json,
          })
        ).body.mfa_token as string;
      const first = await http('POST', `${testApp.url}/auth/login/mfa`, {
        body: { mfa_token: await step(), code },
        headers: json,
      });
      expect(first.status).toBe(200);
      const replay = await http('POST', `${testApp.url}/auth/login/mfa`, {
        body: { mfa_token: await step(), code },
        headers: json,
      });
      expect(replay.status).toBe(401);
      const wrong = await http('POST', `${testApp.url}/auth/login/mfa`, {
        body: { mfa_token: await step(), code: code === '000000' ? '111111' : '000000' },
        headers: json,
      });
      expect(wrong.status).toBe(401);
    });

    it('spends an MFA token once: a later code with the same token is refused', async () => {
      const user = await createUser(testApp, ['doctor']);
      const secret = await enableMfa(testApp, user);
      // As if the account's last code were long past: two codes of the drift window are unused.
      const data = testApp.app.get(DataSource);
      await data.query('UPDATE app_user SET totp_last_step = NULL WHERE id = $1', [user.id]);
      const signedIn = await http('POST', `${testApp.url}/auth/login`, {
        body: { username: user.username, password: user.password },
        headers: json,
      });
      const mfaToken = signedIn.body.mfa_token as string;
      // An expired spent token of a user who never signs in again: any spend clears it away.
      const gone = await createUser(testApp, ['nurse']);
      await data.query(
        `INSERT INTO spent_mfa_token (user_id, jti, expires_at)
         VALUES ($1, 'expired', now() - interval '1 minute')`,
        [gone.id],
      );
      const withCode = async (offset: number) =>
        http('POST', `${testApp.url}/auth/login/mfa`, {
          body: { mfa_token: mfaToken, code: await totpCode(secret, offset) },
          headers: json,
        });
      expect((await withCode(0)).status).toBe(200);
      // Within its five minutes, with the next step's code: a second session from one password.
      const again = await withCode(1);
      expect(again.status).toBe(401);
      expect(again.body.issue[0].diagnostics).toBe('Invalid or expired MFA code');
      // Spent in the database, which every instance reads.
      const [spent] = await data.query<{ n: number }[]>(
        'SELECT count(*)::int AS n FROM spent_mfa_token WHERE user_id = $1',
        [user.id],
      );
      expect(spent).toEqual({ n: 1 });
      const [left] = await data.query<{ n: number }[]>(
        'SELECT count(*)::int AS n FROM spent_mfa_token WHERE user_id = $1',
        [gone.id],
      );
      expect(left).toEqual({ n: 0 });
    });

    it('refuses an MFA token from before a new password or a disable: its password step is undone', async () => {
      const users = testApp.app.get(UsersService);
      const data = testApp.app.get(DataSource);
      for (const end of [
        (username: string) => users.setPassword(username, `pw-${randomUUID()}`),
        async (username: string) => {
          await users.disable(username);
          return users.enable(username);
        },
      ]) {
        const user = await createUser(testApp, ['doctor']);
        const secret = await enableMfa(testApp, user);
        await data.query('UPDATE app_user SET totp_last_step = NULL WHERE id = $1', [user.id]);
        // The password step done (a phished password, a stolen phone at hand), then the
        // administrator ends the account's sessions.
        const signedIn = await http('POST', `${testApp.url}/auth/login`, {
          body: { username: user.username, password: user.password },
          headers: json,
        });
        expect(signedIn.body.mfa_required).toBe(true);
        await end(user.username);
        const late = await http('POST', `${testApp.url}/auth/login/mfa`, {
          body: { mfa_token: signedIn.body.mfa_token, code: await totpCode(secret) },
          headers: json,
        });
        expect(late.status).toBe(401);
        expect(late.body.issue[0].diagnostics).toBe('Invalid or expired MFA code');
      }
    });

    const signIn = (username: string, password: string) =>
      http('POST', `${testApp.url}/auth/login`, { body: { username, password }, headers: json });

    it('locks an account after repeated failures, even against the right password', async () => {
      const user = await createUser(testApp, ['doctor']);
      const attempt = (password: string) => signIn(user.username, password);
      for (let i = 0; i < testApp.app.get(AppConfig).loginMaxAttempts; i++) {
        expect((await attempt('wrong-password-123')).status).toBe(401);
      }
      const locked = await attempt(user.password);
      expect(locked.status).toBe(401);
      // The lock ends (2 s here); then the right password works again.
      await new Promise((resolve) => setTimeout(resolve, 2200));
      expect((await attempt(user.password)).status).toBe(200);
    });

    it('counts wrong MFA codes towards the lockout too, so codes cannot be tried without end', async () => {
      const user = await createUser(testApp, ['doctor']);
      const secret = await enableMfa(testApp, user);
      const mfa = async (code: string) => {
        const step = await signIn(user.username, user.password);
        expect(step.status).toBe(200);
        return http('POST', `${testApp.url}/auth/login/mfa`, {
          body: { mfa_token: step.body.mfa_token as string, code },
          headers: json,
        });
      };
      const right = await totpCode(secret);
      const wrong = right === '000000' ? '111111' : '000000';
      for (let i = 0; i < testApp.app.get(AppConfig).loginMaxAttempts; i++) {
        expect((await mfa(wrong)).status).toBe(401);
      }
      // Locked: the password is refused, and a right code with an MFA token from before too.
      expect((await signIn(user.username, user.password)).status).toBe(401);
      await new Promise((resolve) => setTimeout(resolve, 2200));
      expect((await mfa(await totpCode(secret, 1))).status).toBe(200);
    });

    it('counts failed logins that race each other, each of them', async () => {
      const user = await createUser(testApp, ['doctor']);
      const attempt = (password: string) => signIn(user.username, password);
      const max = testApp.app.get(AppConfig).loginMaxAttempts;
      // All read the account before any hash ends: counted from what each read, they made one.
      const failures = await Promise.all(
        Array.from({ length: max }, () => attempt('wrong-password-123')),
      );
      expect(failures.map((res) => res.status)).toEqual(Array(max).fill(401));
      const [row] = await testApp.app
        .get(DataSource)
        .query<{ failed_attempts: number; locked_until: Date | null }[]>(
          'SELECT failed_attempts, locked_until FROM app_user WHERE id = $1',
          [user.id],
        );
      expect(row!.failed_attempts).toBe(max);
      // The last of them locked the account. (Not checked by signing in: the lock lasts 2 s in
      // this file, and on a loaded machine the racing hashes can outlast it.)
      expect(row!.locked_until).toBeInstanceOf(Date);
    });

    it('changes a password only with the current one, and ends every session of the account', async () => {
      const user = await createUser(testApp, ['doctor']);
      const [mine, other] = [await login(testApp, user), await login(testApp, user)];
      const change = (current_password: string, new_password: string) =>
        authorizedHttp(mine.access_token)('POST', `${testApp.url}/auth/password`, {
          body: { current_password, new_password },
        });
      const failures = async () =>
        (
          await testApp.app
            .get(DataSource)
            .query<{ failed_attempts: number }[]>(
              'SELECT failed_attempts FROM app_user WHERE id = $1',
              [user.id],
            )
        )[0]!.failed_attempts;
      const next = 'a brand new passphrase 42';
      expect((await change('wrong-password-123', next)).status).toBe(403);
      // A stolen token does not make guessing the password any cheaper.
      expect(await failures()).toBe(1);
      expect((await change(user.password, 'too short')).status).toBe(400);
      expect((await change(user.password, user.password)).status).toBe(400);
      expect((await change(user.password, next)).status).toBe(204);
      expect(await failures()).toBe(0);
      expect((await refresh(mine.refresh_token)).status).toBe(401);
      expect((await refresh(other.refresh_token)).status).toBe(401);
      expect((await signIn(user.username, user.password)).status).toBe(401);
      expect((await signIn(user.username, next)).status).toBe(200);
    });

    it('sets a forgotten password from the admin CLI, unlocking the account and ending its sessions', async () => {
      const user = await createUser(testApp, ['doctor']);
      const session = await login(testApp, user);
      for (let i = 0; i < testApp.app.get(AppConfig).loginMaxAttempts; i++) {
        await signIn(user.username, 'wrong-password-123');
      }
      const next = 'set by the administrator 7';
      const result = await runNode(
        BUILT.cli,
        ['user:set-password', '--username', user.username],
        childEnv({
          DATABASE_URL: process.env['DATABASE_URL']!,
          PHI_MASTER_KEY: process.env['PHI_MASTER_KEY']!,
          DATA_DIR: process.env['DATA_DIR']!,
          NODE_ENV: 'test',
        }),
        { stdin: `${next}\n` },
      );
      expect(result).toMatchObject({ code: 0 });
      expect(result.stdout).toContain(user.username);
      expect(result.stdout + result.stderr).not.toContain(next);
      const [row] = await testApp.app
        .get(DataSource)
        .query<{ failed_attempts: number; locked_until: Date | null }[]>(
          'SELECT failed_attempts, locked_until FROM app_user WHERE id = $1',
          [user.id],
        );
      expect(row).toEqual({ failed_attempts: 0, locked_until: null });
      expect((await refresh(session.refresh_token)).status).toBe(401);
      expect((await signIn(user.username, next)).status).toBe(200);
    });

    it('ends a session signed in with MFA while an administrator reset it, and only that one', async () => {
      const user = await createUser(testApp, ['doctor']);
      const secret = await enableMfa(testApp, user);
      const mfaToken = (await signIn(user.username, user.password)).body.mfa_token as string;
      const code = await totpCode(secret, 1);
      const unitOfWork = testApp.app.get(UnitOfWork);
      // The reset runs in a transaction holding the account's row: the sign-in has read the
      // account and checked the code, and waits to record the code's step. The reset revokes
      // the account's refresh tokens before the sign-in inserts its own.
      const { answer } = await unitOfWork.run(async (manager) => {
        await manager.query('SELECT 1 FROM app_user WHERE id = $1 FOR UPDATE', [user.id]);
        const answer = http('POST', `${testApp.url}/auth/login/mfa`, {
          body: { mfa_token: mfaToken, code },
          headers: json,
        });
        await untilWaitingForLock(testApp.app.get(DataSource), 'The MFA sign-in', '%app_user%');
        await testApp.app.get(UsersService).resetMfa(user.username);
        return { answer };
      });
      const raced = await answer;
      expect(raced.status).toBe(200);
      // Signed in again after the reset (a password alone now): that session stays.
      const after = await login(testApp, user);
      expect((await refresh(raced.body.refresh_token as string)).status).toBe(401);
      expect((await refresh(after.refresh_token)).status).toBe(200);
    });

    describe('MFA enrolment and activation against a change of the account made meanwhile', () => {
      const data = () => testApp.app.get(DataSource);
      async function enrolled() {
        const user = await createUser(testApp, ['doctor']);
        const call = authorizedHttp((await login(testApp, user)).access_token);
        const enroll = () => call('POST', `${testApp.url}/auth/mfa/enroll`);
        const { secret } = (await enroll()).body as { secret: string };
        const stored = async () =>
          (
            await data().query<{ mfa_enabled: boolean; totp_secret: string | null }[]>(
              'SELECT mfa_enabled, totp_secret FROM app_user WHERE id = $1',
              [user.id],
            )
          )[0]!;
        /** Sends `request` while another session holds the account's row, and changes it so. */
        async function meanwhile(request: () => Promise<HttpResult>, change: string) {
          const other = data().createQueryRunner();
          await other.connect();
          await other.startTransaction();
          try {
            await other.query('SELECT 1 FROM app_user WHERE id = $1 FOR UPDATE', [user.id]);
            const answer = request();
            await untilWaitingForLock(data(), 'The MFA call', '%app_user%');
            await other.query(`UPDATE app_user SET ${change} WHERE id = $1`, [user.id]);
            await other.commitTransaction();
            return await answer;
          } finally {
            await other.release();
          }
        }
        return { call, enroll, secret, stored, meanwhile };
      }

      it('an administrator resets MFA while the user activates it with a good code', async () => {
        const { call, secret, stored, meanwhile } = await enrolled();
        const activating = async () =>
          call('POST', `${testApp.url}/auth/mfa/activate`, {
            body: { code: await totpCode(secret) },
          });
        // Activated after the reset, MFA would be on with no secret: no sign-in ever again.
        const reset = 'totp_secret = NULL, mfa_enabled = false, totp_last_step = NULL';
        expect((await meanwhile(activating, reset)).status).toBe(409);
        expect(await stored()).toEqual({ mfa_enabled: false, totp_secret: null });
      });

      it('a second enrolment while the first is activated', async () => {
        const { enroll, stored, meanwhile } = await enrolled();
        // Once MFA is on its secret stays: a stolen token could otherwise swap in its own.
        const before = await stored();
        expect((await meanwhile(enroll, 'mfa_enabled = true')).status).toBe(409);
        expect(await stored()).toEqual({ ...before, mfa_enabled: true });
      });
    });

    // Both hang on the time a password check takes: the suite's apps hash at test cost
    // (PASSWORD_HASH_TEST_FAST, set by global setup), this one at production cost.
    describe('at the production cost of a password check', () => {
      let slow: TestApp;
      beforeAll(async () => {
        const restore = withEnv({ PASSWORD_HASH_TEST_FAST: undefined });
        try {
          slow = await createTestApp();
        } finally {
          restore();
        }
      });
      afterAll(() => slow.close());
      const signInSlow = (username: string, password: string) =>
        http('POST', `${slow.url}/auth/login`, { body: { username, password }, headers: json });

      it('does not sign in, or re-enable, an account disabled while its password was checked', async () => {
        const users = slow.app.get(UsersService);
        for (const password of [undefined, 'wrong-password-123']) {
          const user = await createUser(slow, ['doctor']);
          const signingIn = signInSlow(user.username, password ?? user.password);
          // The login has read the account and is hashing (0.1-0.4 s of Argon2id).
          await new Promise((resolve) => setTimeout(resolve, 30));
          await users.disable(user.username);
          expect((await signingIn).status).toBe(401);
          const [listed] = (await users.list()).filter((each) => each.id === user.id);
          expect(listed).toMatchObject({ active: false });
        }
      });

      it('gives the same answer for an unknown user, a wrong password and a locked account', async () => {
        const user = await createUser(slow, ['doctor']);
        const unknown = await signInSlow(`nobody-${Date.now()}`, 'some-password-1');
        const wrong = await signInSlow(user.username, 'some-password-1');
        for (const res of [unknown, wrong]) {
          expect(res.status).toBe(401);
          expect(res.body).toEqual(unknown.body);
        }
        // Similar timing: both spend an Argon2id verification (medians of 5, loose bounds: shared CI).
        const median = async (username: string): Promise<number> => {
          const times: number[] = [];
          for (let i = 0; i < 5; i++) {
            const start = performance.now();
            await signInSlow(username, 'some-password-1');
            times.push(performance.now() - start);
          }
          return times.sort((a, b) => a - b)[2]!;
        };
        const other = await createUser(slow, ['nurse']);
        const ratio = (await median(`nobody-${Date.now()}`)) / (await median(other.username));
        expect(ratio).toBeGreaterThan(0.4);
        expect(ratio).toBeLessThan(2.5);
      });
    });
  });

  describe('roles', () => {
    it('nurse calling user administration is 403; billing reading an Observation is 403', async () => {
      const nurse = authorizedHttp(await tokenFor(testApp, 'nurse'));
      expect((await nurse('GET', `${testApp.url}/admin/users`)).status).toBe(403);
      const billing = authorizedHttp(await tokenFor(testApp, 'billing'));
      expect((await billing('GET', `${testApp.url}/fhir/Observation/any-id`)).status).toBe(403);
      expect((await billing('GET', patientUrl)).status).toBe(200);
      const auditor = authorizedHttp(await tokenFor(testApp, 'auditor'));
      expect((await auditor('GET', patientUrl)).status).toBe(403);
    });

    it('admins manage users only with a recent MFA, and do not read records', async () => {
      const admin = await createUser(testApp, ['admin']);
      const withoutMfa = authorizedHttp((await login(testApp, admin)).access_token);
      expect((await withoutMfa('GET', `${testApp.url}/admin/users`)).status).toBe(403);
      const secret = await enableMfa(testApp, admin);
      const withMfa = authorizedHttp((await loginWithMfa(testApp, admin, secret)).access_token);
      expect((await withMfa('GET', `${testApp.url}/admin/users`)).status).toBe(200);
      expect((await withMfa('GET', patientUrl)).status).toBe(403);
    });
    it("changes an account's roles from the admin CLI, ending the sessions that carry the old ones", async () => {
      const db = testApp.app.get(DataSource);
      const user = await createUser(testApp, ['doctor']);
      const session = await login(testApp, user);
      const observations = `${testApp.url}/fhir/Observation?_id=${randomUUID()}`;
      expect((await authorizedHttp(session.access_token)('GET', observations)).status).toBe(200);
      const setRoles = (roles: string) =>
        runNode(
          BUILT.cli,
          ['user:set-roles', '--username', user.username, '--roles', roles],
          childEnv({
            DATABASE_URL: process.env['DATABASE_URL']!,
            PHI_MASTER_KEY: process.env['PHI_MASTER_KEY']!,
            DATA_DIR: process.env['DATA_DIR']!,
            NODE_ENV: 'test',
          }),
        );
      const account = async () =>
        (
          await db.query<{ roles: string[]; session_epoch: number }[]>(
            'SELECT roles, session_epoch FROM app_user WHERE id = $1',
            [user.id],
          )
        )[0];
      const audited = () =>
        db.query<{ outcome: string; detail: string }[]>(
          `SELECT outcome, detail FROM audit_event
            WHERE source = 'cli' AND subtype = 'user:set-roles' AND detail LIKE $1
            ORDER BY chain_seq`,
          [`username=${user.username} %`],
        );

      // An unknown role changes nothing.
      expect((await setRoles('billing,superuser')).code).not.toBe(0);
      expect(await account()).toEqual({ roles: ['doctor'], session_epoch: 0 });

      const changed = await setRoles('billing,auditor,billing');
      expect(changed).toMatchObject({ code: 0 });
      expect(changed.stdout).toBe(`${user.username}\tbilling,auditor\tactive\tmfa=off\n`);
      // A new session epoch: the tokens issued with the old roles are refused by every instance
      // (within the status cache's 5 s), and the refresh tokens at once.
      expect(await account()).toEqual({ roles: ['billing', 'auditor'], session_epoch: 1 });
      expect((await refresh(session.refresh_token)).status).toBe(401);
      // The refused attempt is on the record by the account it aimed at, as the change is.
      expect(await audited()).toEqual([
        { outcome: 'failure', detail: `username=${user.username} roles=billing,superuser` },
        { outcome: 'success', detail: `username=${user.username} roles=billing,auditor` },
      ]);
      // A new sign-in carries the new roles: billing reads no Observation.
      const billing = authorizedHttp((await login(testApp, user)).access_token);
      expect((await billing('GET', observations)).status).toBe(403);

      // Changed by this instance, the old token stops at once.
      const nurse = await login(testApp, user);
      await testApp.app.get(UsersService).setRoles(user.username, ['nurse']);
      expect((await authorizedHttp(nurse.access_token)('GET', observations)).status).toBe(401);
    });
  });

  describe('every route', () => {
    const PUBLIC = [
      'GET /health',
      'GET /health/ready',
      'GET /fhir/metadata',
      // The FHIR versions served (4.0), as public as the CapabilityStatement that names them.
      'GET /fhir/$versions',
      'POST /auth/login',
      'POST /auth/login/mfa',
      'POST /auth/refresh',
      'POST /auth/logout',
      'GET /.well-known/jwks.json',
      'GET /.well-known/smart-configuration',
      'GET /fhir/.well-known/smart-configuration',
      'GET /.well-known/openid-configuration',
      'GET /smart/style.json',
      'POST /auth/token',
      // SMART App Launch: the sign-in page and its form (src/smart/launch/).
      'GET /auth/authorize',
      'POST /auth/authorize',
      // Not a user's route: it takes the scraper's own token (test/e2e/metrics.e2e-spec.ts).
      'GET /metrics',
    ].sort();

    function routes(app: NestFastifyApplication) {
      return declaredRoutes(app).map((route) => ({
        ...route,
        isPublic: Boolean(
          Reflect.getMetadata(PUBLIC_KEY, route.handler) ??
          Reflect.getMetadata(PUBLIC_KEY, route.controller),
        ),
        declared:
          Reflect.getMetadata(FHIR_INTERACTION_KEY, route.handler) !== undefined ||
          Reflect.getMetadata(APP_PERMISSION_KEY, route.handler) !== undefined,
      }));
    }

    it('declares a permission or is on the public list, and answers 401 without a token', async () => {
      const all = routes(testApp.app);
      expect(all.length).toBeGreaterThan(20);
      expect(
        all
          .filter((r) => r.isPublic)
          .map((r) => r.route)
          .sort(),
      ).toEqual(PUBLIC);
      // The filter keeps the refusals of these paths when they come before the guard: the rest
      // of /fhir answers 401 first (refused-before-authentication.ts).
      expect(
        PUBLIC.filter((route) => route.startsWith('GET /fhir/')).map((r) => r.slice(4)),
      ).toEqual([...PUBLIC_FHIR_PATHS].sort());
      // So does every other prefix a route taking a token is under, but for its public paths.
      const prefixOf = (path: string) => path.split('/', 2)[1] ?? '';
      expect(
        all
          .filter((r) => !r.isPublic && !AUTHENTICATED_PREFIXES.has(prefixOf(r.path)))
          .map((r) => r.route),
      ).toEqual([]);
      expect(
        [
          ...new Set(
            all
              .filter((r) => r.isPublic && AUTHENTICATED_PREFIXES.has(prefixOf(r.path)))
              .map((r) => r.path),
          ),
        ].sort(),
      ).toEqual([...PUBLIC_PATHS].sort());
      expect(all.filter((r) => !r.isPublic && !r.declared).map((r) => r.route)).toEqual([]);
      for (const route of all.filter((r) => !r.isPublic)) {
        const url = route.path
          .replace(':type', 'Patient')
          .replace(':id', 'some-id')
          .replace(':vid', '1')
          .replace(':username', 'someone')
          .replace(':job', 'some-job')
          .replace(':file', 'Patient.ndjson');
        const res = await http(route.method, `${testApp.url}${url}`, {
          ...(['POST', 'PUT', 'PATCH'].includes(route.method) ? { body: {}, headers: json } : {}),
        });
        expect({ route: route.route, status: res.status }).toEqual({
          route: route.route,
          status: 401,
        });
      }
    });

    it('denies an authenticated user a route that declares no permission', async () => {
      @Controller('undeclared')
      class UndeclaredController {
        @Get()
        open(): { leaked: true } {
          return { leaked: true };
        }
      }
      @Module({ imports: [await AppModule.register()], controllers: [UndeclaredController] })
      class WithUndeclaredRoute {}
      const app = await NestFactory.create<NestFastifyApplication>(
        WithUndeclaredRoute,
        createHttpAdapter(readEnv()),
        { bufferLogs: true, bodyParser: false },
      );
      setupApp(app, { docs: false });
      await app.listen(0, '127.0.0.1');
      try {
        const url = (await app.getUrl()).replace('[::1]', '127.0.0.1');
        const res = await http('GET', `${url}/undeclared`, {
          headers: { authorization: `Bearer ${tokens.genuine}` },
        });
        expect(res.status).toBe(403);
        expect(res.text).not.toContain('leaked');
      } finally {
        await app.close();
      }
    });
  });
});
