import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { getDataSourceToken } from '@nestjs/typeorm';
import { createLocalJWKSet, decodeJwt, jwtVerify } from 'jose';
import type { DataSource } from 'typeorm';
import { SmartAppsService } from '../../src/auth/apps/smart-apps.service.js';
import { UsersService } from '../../src/auth/users.service.js';
import { FieldCipher, PhiDecryptionError } from '../../src/crypto/field-cipher.js';
import { KeyRing } from '../../src/crypto/key-ring.js';
import { createUser, enableMfa, login, totpCode, type TestUser } from '../support/auth.js';
import { buildPatient } from '../support/factories.js';
import { authorizedHttp, http, type HttpResult } from '../support/http.js';
import { startCliHost } from '../support/cli.js';
import { BUILT, childEnv, runNode } from '../support/process.js';
import { createTestApp, type TestApp } from '../support/test-app.js';

const REDIRECT = 'https://app.example/callback';

interface Pkce {
  verifier: string;
  challenge: string;
}

function pkce(): Pkce {
  const verifier = randomBytes(32).toString('base64url');
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
}

interface Answer {
  status: number;
  location: URL | undefined;
  headers: Headers;
  text: string;
}

/** A browser's request, redirects not followed: where would the user be sent? */
async function browse(url: string, form?: Record<string, string>): Promise<Answer> {
  const response = await fetch(url, {
    method: form ? 'POST' : 'GET',
    redirect: 'manual',
    ...(form
      ? {
          body: new URLSearchParams(form).toString(),
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
        }
      : {}),
  });
  const location = response.headers.get('location');
  return {
    status: response.status,
    location: location ? new URL(location) : undefined,
    headers: response.headers,
    text: await response.text(),
  };
}

/** The sealed request the sign-in form carries. */
function sealedRequest(page: Answer): string {
  const match = /name="request" value="([^"]+)"/.exec(page.text);
  if (!match) throw new Error(`no sign-in form: ${page.status} ${page.text.slice(0, 300)}`);
  return match[1]!;
}

describe('SMART App Launch: authorization code with PKCE at CareVault’s own endpoint', () => {
  let testApp: TestApp;
  let db: DataSource;
  let apps: SmartAppsService;
  let fhirBase: string;
  let doctor: TestUser;
  let patientId: string;
  let otherPatientId: string;
  let mrn: string;
  let appId: string;

  /** The authorization URL an app builds; `overrides` replace or (undefined) drop parameters. */
  function authorizeUrl(
    challenge: string,
    overrides: Record<string, string | undefined> = {},
    client = appId,
  ): string {
    const params: Record<string, string | undefined> = {
      response_type: 'code',
      client_id: client,
      redirect_uri: REDIRECT,
      scope: 'launch/patient patient/*.cruds openid fhirUser offline_access',
      state: 'st-123',
      aud: fhirBase,
      code_challenge: challenge,
      code_challenge_method: 'S256',
      ...overrides,
    };
    const search = new URLSearchParams();
    for (const [name, value] of Object.entries(params)) {
      if (value !== undefined) search.set(name, value);
    }
    return `${testApp.url}/auth/authorize?${search.toString()}`;
  }

  function signIn(page: Answer, fields: Record<string, string>): Promise<Answer> {
    return browse(`${testApp.url}/auth/authorize`, {
      request: sealedRequest(page),
      decision: 'allow',
      ...fields,
    });
  }

  function tokenRequest(form: Record<string, string>): Promise<HttpResult> {
    return http('POST', `${testApp.url}/auth/token`, {
      raw: new URLSearchParams(form).toString(),
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
  }

  /** Authorizes as `user` with the patient given, and returns the code and verifier. */
  async function authorize(
    user: TestUser,
    fields: Record<string, string> = {},
    overrides: Record<string, string | undefined> = {},
  ): Promise<{ code: string; verifier: string }> {
    const { verifier, challenge } = pkce();
    const page = await browse(authorizeUrl(challenge, overrides));
    expect(page.status).toBe(200);
    const answer = await signIn(page, {
      username: user.username,
      password: user.password,
      patient: mrn,
      ...fields,
    });
    expect(answer.status).toBe(303);
    expect(answer.location?.searchParams.get('state')).toBe(overrides['state'] ?? 'st-123');
    return { code: answer.location!.searchParams.get('code')!, verifier };
  }

  const exchange = (code: string, verifier: string, extra: Record<string, string> = {}) =>
    tokenRequest({
      grant_type: 'authorization_code',
      code,
      redirect_uri: REDIRECT,
      client_id: appId,
      code_verifier: verifier,
      ...extra,
    });

  beforeAll(async () => {
    testApp = await createTestApp();
    db = testApp.app.get<DataSource>(getDataSourceToken());
    apps = testApp.app.get(SmartAppsService);
    fhirBase = `${testApp.url}/fhir`;
    doctor = await createUser(testApp, ['doctor']);
    const api = authorizedHttp((await login(testApp, doctor)).access_token);
    mrn = `MRN-${randomUUID().slice(0, 10)}`;
    const created = await api('POST', `${fhirBase}/Patient`, { body: buildPatient({ mrn }) });
    const other = await api('POST', `${fhirBase}/Patient`, { body: buildPatient() });
    expect([created.status, other.status]).toEqual([201, 201]);
    patientId = created.body.id;
    otherPatientId = other.body.id;
    appId = (
      await apps.register(
        `chart-${randomUUID().slice(0, 8)}`,
        [REDIRECT, 'http://127.0.0.1:7777/cb'],
        'launch/patient patient/*.rs offline_access',
      )
    ).id;
  });

  afterAll(async () => {
    await testApp.close();
  });

  it('advertises the authorization endpoint, PKCE S256 and standalone launch', async () => {
    const smart = await http('GET', `${fhirBase}/.well-known/smart-configuration`);
    expect(smart.body).toMatchObject({
      authorization_endpoint: `${testApp.url}/auth/authorize`,
      grant_types_supported: expect.arrayContaining(['authorization_code']),
      code_challenge_methods_supported: ['S256'],
      response_types_supported: ['code'],
      capabilities: expect.arrayContaining([
        'launch-standalone',
        'context-standalone-patient',
        'client-public',
      ]),
      scopes_supported: expect.arrayContaining(['launch/patient', 'offline_access']),
    });
  });

  it('takes the authorization request POSTed as a form (authorize-post) as it takes the GET', async () => {
    const smart = await http('GET', `${fhirBase}/.well-known/smart-configuration`);
    expect(smart.body.capabilities).toContain('authorize-post');
    const { verifier, challenge } = pkce();
    const params = Object.fromEntries(new URL(authorizeUrl(challenge)).searchParams);
    const requestId = randomUUID();
    const response = await fetch(`${testApp.url}/auth/authorize`, {
      method: 'POST',
      redirect: 'manual',
      body: new URLSearchParams(params).toString(),
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        'x-request-id': requestId,
      },
    });
    const page: Answer = {
      status: response.status,
      location: undefined,
      headers: response.headers,
      text: await response.text(),
    };
    expect(page.status).toBe(200);
    expect(page.headers.get('cache-control')).toBe('no-store');
    expect(page.text).toContain('name="patient"');
    // The page of a request, not a sign-in: audited as the GET is.
    const [row] = await db.query<{ action: string; subtype: string | null }[]>(
      `SELECT action, subtype FROM audit_event WHERE request_id = $1`,
      [requestId],
    );
    expect(row).toMatchObject({ action: 'read', subtype: null });

    const answer = await signIn(page, {
      username: doctor.username,
      password: doctor.password,
      patient: mrn,
    });
    expect(answer.status).toBe(303);
    expect(answer.location?.searchParams.get('state')).toBe('st-123');
    const token = await exchange(answer.location!.searchParams.get('code')!, verifier);
    expect(token.status).toBe(200);
    expect(token.body.patient).toBe(patientId);

    // Refused as the GET refuses: an unknown app gets the error page, a bad request a redirect.
    const unknown = await browse(`${testApp.url}/auth/authorize`, {
      ...params,
      client_id: randomUUID(),
    });
    expect(unknown.status).toBe(400);
    const unsupported = await browse(`${testApp.url}/auth/authorize`, {
      ...params,
      response_type: 'token',
    });
    expect(unsupported.status).toBe(303);
    expect(unsupported.location?.searchParams.get('error')).toBe('unsupported_response_type');
    // A form with neither is no sign-in either.
    expect((await browse(`${testApp.url}/auth/authorize`, { username: 'x' })).status).toBe(400);
  });

  it('seals the pending request, chosen by anyone, under a key of its own, not the PHI key', async () => {
    // Unauthenticated: state and nonce are the caller's. Sealed under the PHI key (until
    // 2026-12-06), this was an encryption oracle for it, naming its id.
    const page = await browse(authorizeUrl(pkce().challenge, { state: 'chosen', nonce: 'n' }));
    const sealed = sealedRequest(page);
    expect(sealed).toMatch(/^cvs1\./);
    const ring = testApp.app.get(KeyRing);
    for (const id of ring.ids) expect(sealed).not.toContain(id);
    const [, iv, body, tag] = sealed.split('.');
    const cipher = testApp.app.get(FieldCipher);
    const context = { table: 'smart', column: 'authorize', row: ['request'] };
    expect(() => cipher.decrypt([`cv1`, ring.currentId, iv, body, tag].join('.'), context)).toThrow(
      PhiDecryptionError,
    );
  });

  it('signs the user in, takes the patient by MRN, and gives the app a token for that patient only', async () => {
    const { verifier, challenge } = pkce();
    const page = await browse(authorizeUrl(challenge));
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toContain('text/html');
    expect(page.headers.get('cache-control')).toBe('no-store');
    const csp = page.headers.get('content-security-policy')!;
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).toContain("form-action 'self' https://app.example");
    expect(csp).not.toContain('script-src');
    // What the app will get, narrowed to its registration: no write, no openid.
    expect(page.text).toContain('patient/*.rs');
    expect(page.text).not.toContain('patient/*.cruds');
    expect(page.text).not.toContain('openid');
    expect(page.text).toContain('name="patient"');

    const answer = await signIn(page, {
      username: doctor.username,
      password: doctor.password,
      patient: mrn,
    });
    expect(answer.status).toBe(303);
    expect(answer.headers.get('cache-control')).toBe('no-store');
    expect(`${answer.location!.origin}${answer.location!.pathname}`).toBe(REDIRECT);
    expect(answer.location!.searchParams.get('state')).toBe('st-123');
    const code = answer.location!.searchParams.get('code')!;
    expect(code).toMatch(/^ac_/);

    const token = await exchange(code, verifier);
    expect(token.status).toBe(200);
    expect(token.headers.get('cache-control')).toBe('no-store');
    expect(token.body).toMatchObject({
      token_type: 'Bearer',
      scope: 'launch/patient offline_access patient/*.rs',
      patient: patientId,
      refresh_token: expect.stringMatching(/^rt_/),
    });
    expect(token.body.id_token).toBeUndefined();
    expect(decodeJwt(token.body.access_token)).toMatchObject({
      sub: doctor.id,
      patient: patientId,
      client_id: appId,
      amr: ['pwd'],
    });

    const app = authorizedHttp(token.body.access_token);
    expect((await app('GET', `${fhirBase}/Patient/${patientId}`)).status).toBe(200);
    // Another patient does not exist for this token, and the scope grants no write.
    expect((await app('GET', `${fhirBase}/Patient/${otherPatientId}`)).status).toBe(404);
    const write = await app('POST', `${fhirBase}/Observation`, {
      body: {
        resourceType: 'Observation',
        status: 'final',
        code: { text: 'note' },
        subject: { reference: `Patient/${patientId}` },
      },
    });
    expect(write.status).toBe(403);

    // The code's exchange is a login of its own kind, not a refresh.
    const exchanges = await db.query<{ subtype: string }[]>(
      `SELECT subtype FROM audit_event
        WHERE action = 'login' AND route = '/auth/token' AND actor_user_id = $1`,
      [doctor.id],
    );
    expect(exchanges.map((row) => row.subtype)).toContain('authorization-code');

    // Every request with the token is audited as the user, through the app.
    const audited = await db.query<{ actor_user_id: string }[]>(
      `SELECT actor_user_id FROM audit_event WHERE actor_scope LIKE $1`,
      [`%client=${appId}%`],
    );
    expect(audited.length).toBeGreaterThanOrEqual(3);
    expect(new Set(audited.map((row) => row.actor_user_id))).toEqual(new Set([doctor.id]));

    // The refresh token is bound to its app: another client naming itself is refused, and
    // the token stays usable by its own.
    const otherClient = await tokenRequest({
      grant_type: 'refresh_token',
      refresh_token: token.body.refresh_token,
      client_id: randomUUID(),
    });
    expect(otherClient.body.error).toBe('invalid_grant');

    // The refresh token keeps the grant: same scope, same patient, same app.
    const refreshed = await tokenRequest({
      grant_type: 'refresh_token',
      refresh_token: token.body.refresh_token,
      client_id: appId,
    });
    expect(refreshed.status).toBe(200);
    expect(refreshed.body).toMatchObject({
      scope: 'launch/patient offline_access patient/*.rs',
      patient: patientId,
    });
    expect(decodeJwt(refreshed.body.access_token)).toMatchObject({
      patient: patientId,
      client_id: appId,
      scope: 'launch/patient offline_access patient/*.rs',
    });

    // The client may name the scope it was granted, or narrower (RFC 6749 6, SMART, ONC's
    // g10 refresh test): the access token is narrowed, the refresh token keeps the grant.
    // Wider is invalid_scope, and leaves the refresh token unused.
    const withScope = (presented: string, scope: string) =>
      tokenRequest({ grant_type: 'refresh_token', refresh_token: presented, scope });
    for (const wider of ['patient/*.cruds', 'user/*.rs', 'openid', 'launch/patient nonsense']) {
      const refused = await withScope(refreshed.body.refresh_token, wider);
      expect({ wider, status: refused.status, error: refused.body.error }).toEqual({
        wider,
        status: 400,
        error: 'invalid_scope',
      });
    }
    const same = await withScope(
      refreshed.body.refresh_token,
      'launch/patient offline_access patient/*.rs',
    );
    expect(same.status).toBe(200);
    expect(same.body.scope).toBe('launch/patient offline_access patient/*.rs');
    const narrower = await withScope(same.body.refresh_token, 'patient/Observation.rs');
    expect(narrower.status).toBe(200);
    expect(narrower.body).toMatchObject({ scope: 'patient/Observation.rs', patient: patientId });
    expect(decodeJwt(narrower.body.access_token)).toMatchObject({
      scope: 'patient/Observation.rs',
    });
    const observations = authorizedHttp(narrower.body.access_token);
    expect((await observations('GET', `${fhirBase}/Patient/${patientId}`)).status).toBe(403);
    const widerAgain = await tokenRequest({
      grant_type: 'refresh_token',
      refresh_token: narrower.body.refresh_token,
    });
    expect(widerAgain.body.scope).toBe('launch/patient offline_access patient/*.rs');

    // The code is spent; presenting it again revokes what was issued for it.
    const again = await exchange(code, verifier);
    expect(again.status).toBe(400);
    expect(again.body.error).toBe('invalid_grant');
    const afterReuse = await tokenRequest({
      grant_type: 'refresh_token',
      refresh_token: widerAgain.body.refresh_token,
    });
    expect(afterReuse.body.error).toBe('invalid_grant');
  });

  it('takes the patient by CareVault id, and tells the user on the page what is wrong', async () => {
    const { verifier, challenge } = pkce();
    const page = await browse(authorizeUrl(challenge));
    const wrongPassword = await signIn(page, {
      username: doctor.username,
      password: 'not the password at all',
      patient: mrn,
    });
    expect(wrongPassword.status).toBe(401);
    expect(wrongPassword.location).toBeUndefined();
    expect(wrongPassword.text).toContain('Invalid username or password');
    expect(wrongPassword.text).toContain(`value="${doctor.username}"`);
    // A password refused on the app's sign-in form is a failed login, as at /auth/login.
    let failedLogins: unknown[] = [];
    for (let i = 0; i < 50 && failedLogins.length === 0; i++) {
      if (i > 0) await new Promise((resolve) => setTimeout(resolve, 100));
      failedLogins = await db.query(
        `SELECT 1 FROM audit_event
          WHERE action = 'login' AND subtype = 'smart-authorize' AND status_code = 401
            AND actor_name = $1`,
        [doctor.username],
      );
    }
    expect(failedLogins.length).toBeGreaterThanOrEqual(1);

    const unknown = await signIn(wrongPassword, {
      username: doctor.username,
      password: doctor.password,
      patient: 'MRN-nobody-has-this',
    });
    expect(unknown.status).toBe(404);
    expect(unknown.text).toContain('No patient you may see has this id or identifier');

    // A role that may not read patients is told so, whether the patient is here or not: an
    // auditor learned an MRN's patient id so until 2026-12-06.
    const auditor = await createUser(testApp, ['auditor']);
    for (const patient of [mrn, 'MRN-nobody-has-this', patientId]) {
      const refused = await signIn(unknown, {
        username: auditor.username,
        password: auditor.password,
        patient,
      });
      expect(refused.status).toBe(403);
      expect(refused.location).toBeUndefined();
      expect(refused.text).toContain('Your role may not read patients');
      expect(refused.text).not.toContain(patientId);
    }

    const byId = await signIn(unknown, {
      username: doctor.username,
      password: doctor.password,
      patient: otherPatientId,
    });
    expect(byId.status).toBe(303);
    const token = await exchange(byId.location!.searchParams.get('code')!, verifier);
    expect(token.body.patient).toBe(otherPatientId);
  });

  it('answers a SMART v1 request in v1 words, as a v1 app reads them, on refresh too', async () => {
    const { code, verifier } = await authorize(
      doctor,
      {},
      { scope: 'launch/patient patient/*.read patient/Observation.write offline_access' },
    );
    const token = await exchange(code, verifier);
    expect(token.status).toBe(200);
    // patient/*.read within patient/*.rs is all of `read`; nothing of `write` is registered.
    expect(token.body.scope).toBe('launch/patient offline_access patient/*.read');
    const refreshed = await tokenRequest({
      grant_type: 'refresh_token',
      refresh_token: token.body.refresh_token,
      client_id: appId,
    });
    expect(refreshed.body.scope).toBe(token.body.scope);
    const read = await http('GET', `${fhirBase}/Patient/${patientId}`, {
      headers: { authorization: `Bearer ${refreshed.body.access_token}` },
    });
    expect(read.status).toBe(200);
    // A grant a v1 word cannot say is answered in v2 letters.
    const narrow = await apps.register(
      `reader-${randomUUID().slice(0, 8)}`,
      [REDIRECT],
      'launch/patient patient/*.r',
    );
    const { verifier: v, challenge } = pkce();
    const page = await browse(
      authorizeUrl(challenge, { scope: 'launch/patient patient/*.read' }, narrow.id),
    );
    const answer = await signIn(page, {
      username: doctor.username,
      password: doctor.password,
      patient: mrn,
    });
    const narrowToken = await tokenRequest({
      grant_type: 'authorization_code',
      code: answer.location!.searchParams.get('code')!,
      redirect_uri: REDIRECT,
      client_id: narrow.id,
      code_verifier: v,
    });
    expect(narrowToken.body.scope).toBe('launch/patient patient/*.r');
  });

  it('never redirects to an unregistered app or URI, and sends other errors back to the app', async () => {
    const { challenge } = pkce();
    for (const url of [
      authorizeUrl(challenge, {}, randomUUID()),
      authorizeUrl(challenge, {}, 'not-a-uuid'),
      authorizeUrl(challenge, { redirect_uri: 'https://evil.example/callback' }),
      authorizeUrl(challenge, { redirect_uri: `${REDIRECT}/more` }),
      authorizeUrl(challenge, { redirect_uri: undefined }),
    ]) {
      const answer = await browse(url);
      expect(answer.status).toBe(400);
      expect(answer.location).toBeUndefined();
      expect(answer.text).toContain('Authorization failed');
    }

    const cases: [Record<string, string | undefined>, string, string][] = [
      [{ code_challenge: undefined }, 'invalid_request', 'PKCE'],
      [{ code_challenge_method: 'plain' }, 'invalid_request', 'PKCE'],
      [{ aud: 'https://other.example/fhir' }, 'invalid_request', 'aud'],
      [{ response_type: 'token' }, 'unsupported_response_type', 'code'],
      [{ scope: 'system/*.rs openid' }, 'invalid_scope', 'resource scopes'],
      [{ launch: 'xyz' }, 'invalid_scope', 'launch scope'],
    ];
    for (const [overrides, error, description] of cases) {
      const answer = await browse(authorizeUrl(challenge, overrides));
      expect(answer.status).toBe(303);
      expect(`${answer.location!.origin}${answer.location!.pathname}`).toBe(REDIRECT);
      expect(answer.location!.searchParams.get('error')).toBe(error);
      expect(answer.location!.searchParams.get('error_description')).toContain(description);
      expect(answer.location!.searchParams.get('state')).toBe('st-123');
      expect(answer.location!.searchParams.get('code')).toBeNull();
    }
    const noState = await browse(authorizeUrl(challenge, { state: undefined }));
    expect(noState.location!.searchParams.get('error')).toBe('invalid_request');

    // The user's refusal goes back to the app too; a forged or altered form does not.
    const page = await browse(authorizeUrl(challenge));
    const denied = await browse(`${testApp.url}/auth/authorize`, {
      request: sealedRequest(page),
      decision: 'deny',
    });
    expect(denied.location!.searchParams.get('error')).toBe('access_denied');
    expect(denied.location!.searchParams.get('state')).toBe('st-123');
    const sealed = sealedRequest(page);
    const forged = await browse(`${testApp.url}/auth/authorize`, {
      request: `${sealed.slice(0, -4)}AAAA`,
      username: doctor.username,
      password: doctor.password,
      patient: mrn,
    });
    expect(forged.status).toBe(400);
    expect(forged.location).toBeUndefined();
  });

  it('redeems a code once, only with its verifier, client and redirect URI, within its minute', async () => {
    const wrongVerifier = await authorize(doctor);
    const refused = await exchange(wrongVerifier.code, pkce().verifier);
    expect(refused.body).toMatchObject({ error: 'invalid_grant' });
    expect(refused.body.error_description).toContain('PKCE');
    // The first presentation spends the code, right or wrong.
    expect((await exchange(wrongVerifier.code, wrongVerifier.verifier)).body.error).toBe(
      'invalid_grant',
    );

    const otherUri = await authorize(doctor);
    const byUri = await exchange(otherUri.code, otherUri.verifier, {
      redirect_uri: 'http://127.0.0.1:7777/cb',
    });
    expect(byUri.body.error).toBe('invalid_grant');
    const otherClient = await authorize(doctor);
    const byClient = await exchange(otherClient.code, otherClient.verifier, {
      client_id: randomUUID(),
    });
    expect(byClient.body.error).toBe('invalid_grant');

    const late = await authorize(doctor);
    await db.query(
      `UPDATE authorization_code SET expires_at = now() - interval '1 second' WHERE code_hash = $1`,
      [createHash('sha256').update(late.code).digest('hex')],
    );
    expect((await exchange(late.code, late.verifier)).body.error).toBe('invalid_grant');

    const missing = await tokenRequest({ grant_type: 'authorization_code', code: 'abc' });
    expect(missing.status).toBe(400);
    expect(missing.body.error).toBe('invalid_request');
    expect((await exchange('ac_made-up', pkce().verifier)).body.error).toBe('invalid_grant');
  });

  it('revokes the refresh token of a code presented twice at once', async () => {
    // A stolen code and verifier sent alongside the app's own: at most one gets tokens, and its
    // session ends all the same, whichever presentation reaches the database first.
    for (let round = 0; round < 3; round += 1) {
      const { code, verifier } = await authorize(doctor);
      const answers = await Promise.all([1, 2, 3, 4].map(() => exchange(code, verifier)));
      const won = answers.filter((answer) => answer.status === 200);
      expect(won.length).toBeLessThanOrEqual(1);
      expect(answers.filter((answer) => answer.body.error === 'invalid_grant')).toHaveLength(
        4 - won.length,
      );
      for (const answer of won) {
        const refreshed = await tokenRequest({
          grant_type: 'refresh_token',
          refresh_token: answer.body.refresh_token,
        });
        expect(refreshed.body.error).toBe('invalid_grant');
      }
    }
  });

  it('ends the session of a code presented again after its redemption, access token included', async () => {
    const { code, verifier } = await authorize(doctor);
    const first = await exchange(code, verifier);
    expect(first.status).toBe(200);
    expect((await exchange(code, verifier)).body.error).toBe('invalid_grant');
    // RFC 6749 section 4.1.2: the tokens issued for it are revoked; the access token too,
    // rather than at its expiry, as it names the refresh token's session.
    const app = authorizedHttp(first.body.access_token);
    expect((await app('GET', `${fhirBase}/Patient/${patientId}`)).status).toBe(401);
    const refreshed = await tokenRequest({
      grant_type: 'refresh_token',
      refresh_token: first.body.refresh_token,
    });
    expect(refreshed.body.error).toBe('invalid_grant');
  });

  it('asks an MFA user for the code, and the token says so', async () => {
    const user = await createUser(testApp, ['nurse']);
    const secret = await enableMfa(testApp, user);
    const { verifier, challenge } = pkce();
    const page = await browse(authorizeUrl(challenge));
    const withoutCode = await signIn(page, {
      username: user.username,
      password: user.password,
      patient: mrn,
    });
    expect(withoutCode.status).toBe(401);
    expect(withoutCode.text).toContain('MFA code');
    const answer = await signIn(withoutCode, {
      username: user.username,
      password: user.password,
      code: await totpCode(secret, 1),
      patient: mrn,
    });
    expect(answer.status).toBe(303);
    const token = await exchange(answer.location!.searchParams.get('code')!, verifier);
    expect(decodeJwt(token.body.access_token).amr).toEqual(['pwd', 'otp']);
  });

  it('refuses a code signed in for before an MFA reset, and signs the user in again after it', async () => {
    const user = await createUser(testApp, ['doctor']);
    const secret = await enableMfa(testApp, user);
    const { verifier, challenge } = pkce();
    const answer = await signIn(await browse(authorizeUrl(challenge)), {
      username: user.username,
      password: user.password,
      code: await totpCode(secret, 1),
      patient: mrn,
    });
    expect(answer.status).toBe(303);
    // The device was stolen: an administrator resets MFA before the app redeems its code.
    await testApp.app.get(UsersService).resetMfa(user.username);
    const token = await exchange(answer.location!.searchParams.get('code')!, verifier);
    expect(token.body).toMatchObject({ error: 'invalid_grant' });
    expect(token.body.error_description).toContain('ended');
    const again = await authorize(user);
    expect((await exchange(again.code, again.verifier)).status).toBe(200);
  });

  it('gives a user-context app no patient and no refresh token unless registered and asked for', async () => {
    const userApp = await apps.register(
      `desk-${randomUUID().slice(0, 8)}`,
      [REDIRECT],
      'user/Observation.rs online_access',
    );
    const { verifier, challenge } = pkce();
    const page = await browse(
      authorizeUrl(challenge, { scope: 'user/Observation.rs user/Patient.rs' }, userApp.id),
    );
    expect(page.status).toBe(200);
    expect(page.text).not.toContain('name="patient"');
    const answer = await signIn(page, { username: doctor.username, password: doctor.password });
    const token = await exchange(answer.location!.searchParams.get('code')!, verifier, {
      client_id: userApp.id,
    });
    expect(token.status).toBe(200);
    expect(token.body.scope).toBe('user/Observation.rs');
    expect(token.body.patient).toBeUndefined();
    expect(token.body.need_patient_banner).toBeUndefined();
    expect(token.body.refresh_token).toBeUndefined();
    const app = authorizedHttp(token.body.access_token);
    expect((await app('GET', `${fhirBase}/Observation?_count=1`)).status).toBe(200);
    expect((await app('GET', `${fhirBase}/Patient/${patientId}`)).status).toBe(403);
  });

  it('gives an OpenID Connect id_token naming the user, their FHIR identity and the nonce', async () => {
    const openidApp = await apps.register(
      `sso-${randomUUID().slice(0, 8)}`,
      [REDIRECT],
      'openid fhirUser user/*.rs',
    );
    const practitioner = await authorizedHttp((await login(testApp, doctor)).access_token)(
      'POST',
      `${fhirBase}/Practitioner`,
      { body: { resourceType: 'Practitioner', name: [{ family: 'Lee' }] } },
    );
    expect(practitioner.status).toBe(201);
    await testApp.app
      .get(UsersService)
      .setFhirUser(doctor.username, `Practitioner/${practitioner.body.id}`);
    const unlinked = await createUser(testApp, ['nurse']);

    const discovery = await http('GET', `${testApp.url}/.well-known/openid-configuration`);
    expect(discovery.body).toMatchObject({
      issuer: testApp.url,
      authorization_endpoint: `${testApp.url}/auth/authorize`,
      id_token_signing_alg_values_supported: ['RS256'],
    });
    const jwks = (await http('GET', discovery.body.jwks_uri)).body;
    const keys = createLocalJWKSet(jwks);

    for (const [user, fhirUser] of [
      [doctor, `${fhirBase}/Practitioner/${practitioner.body.id}`],
      [unlinked, undefined],
    ] as const) {
      const { verifier, challenge } = pkce();
      const nonce = `n-${randomUUID()}`;
      const page = await browse(
        authorizeUrl(challenge, { scope: 'openid fhirUser user/Patient.rs', nonce }, openidApp.id),
      );
      const answer = await signIn(page, { username: user.username, password: user.password });
      const token = await exchange(answer.location!.searchParams.get('code')!, verifier, {
        client_id: openidApp.id,
      });
      expect(token.status).toBe(200);
      expect(token.body.scope).toBe(
        fhirUser ? 'openid fhirUser user/Patient.rs' : 'openid user/Patient.rs',
      );
      const { payload, protectedHeader } = await jwtVerify(token.body.id_token, keys, {
        issuer: testApp.url,
        audience: openidApp.id,
        algorithms: ['RS256'],
      });
      expect(protectedHeader.typ).toBe('JWT');
      // SMART's RS256, with a 2048-bit RSA key of its own in the JWKS.
      expect(jwks.keys).toContainEqual(
        expect.objectContaining({ kid: protectedHeader.kid, kty: 'RSA', alg: 'RS256', use: 'sig' }),
      );
      const rsa = jwks.keys.find((key: { kid: string }) => key.kid === protectedHeader.kid);
      expect(Buffer.from(rsa.n, 'base64url').length * 8).toBeGreaterThanOrEqual(2048);
      expect(payload).toMatchObject({ sub: user.id, nonce, amr: ['pwd'] });
      expect(payload['fhirUser']).toBe(fhirUser);
    }
  });

  it('works with openid-client, a certified OpenID Connect client, from discovery to a verified id_token', async () => {
    const oidc = await import('openid-client');
    const registered = await apps.register(
      `rp-${randomUUID().slice(0, 8)}`,
      [REDIRECT],
      'openid launch/patient patient/*.rs offline_access',
    );
    // The test server is plain http on loopback; a real deployment is https.
    const config = await oidc.discovery(
      new URL(testApp.url),
      registered.id,
      // openid-client's default: RS256, what SMART requires of id_tokens.
      {},
      oidc.None(),
      { execute: [oidc.allowInsecureRequests] },
    );
    const verifier = oidc.randomPKCECodeVerifier();
    const state = oidc.randomState();
    const nonce = oidc.randomNonce();
    const url = oidc.buildAuthorizationUrl(config, {
      redirect_uri: REDIRECT,
      scope: 'openid launch/patient patient/*.rs offline_access',
      code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state,
      nonce,
      aud: fhirBase,
    });
    const page = await browse(url.href);
    const answer = await signIn(page, {
      username: doctor.username,
      password: doctor.password,
      patient: mrn,
    });
    const tokens = await oidc.authorizationCodeGrant(config, answer.location!, {
      pkceCodeVerifier: verifier,
      expectedState: state,
      expectedNonce: nonce,
      idTokenExpected: true,
    });
    expect(tokens.claims()).toMatchObject({ iss: testApp.url, sub: doctor.id, aud: registered.id });
    expect(tokens).toMatchObject({ patient: patientId, scope: expect.stringContaining('openid') });
    const read = await fetch(`${fhirBase}/Patient/${patientId}`, {
      headers: { authorization: `Bearer ${tokens.access_token}` },
    });
    expect(read.status).toBe(200);
    const refreshed = await oidc.refreshTokenGrant(config, tokens.refresh_token!);
    expect(refreshed.access_token).toBeTruthy();
  });

  it('launches from an EHR front-end: the patient and encounter open on screen, for the user who opened them', async () => {
    const ehrApp = await apps.register(
      `ehr-${randomUUID().slice(0, 8)}`,
      [REDIRECT],
      'launch patient/*.rs',
    );
    const doctorToken = (await login(testApp, doctor)).access_token;
    const api = authorizedHttp(doctorToken);
    const encounter = await api('POST', `${fhirBase}/Encounter`, {
      body: {
        resourceType: 'Encounter',
        status: 'in-progress',
        class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'IMP' },
        subject: { reference: `Patient/${patientId}` },
      },
    });
    expect(encounter.status).toBe(201);
    const launchFor = (body: Record<string, unknown>, token = doctorToken) =>
      http('POST', `${testApp.url}/auth/launch`, {
        body,
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      });
    const opened = await launchFor({
      client_id: ehrApp.id,
      patient: patientId,
      encounter: encounter.body.id,
    });
    expect(opened.status).toBe(200);
    expect(opened.body.expires_in).toBe(300);
    const launch: string = opened.body.launch;

    // Refused: an app not registered for EHR launch, an encounter of another patient, an app's token.
    expect((await launchFor({ client_id: appId, patient: patientId })).status).toBe(400);
    expect(
      (
        await launchFor({
          client_id: ehrApp.id,
          patient: otherPatientId,
          encounter: encounter.body.id,
        })
      ).status,
    ).toBe(400);
    const { code: appCode, verifier: appVerifier } = await authorize(doctor);
    const appToken = (await exchange(appCode, appVerifier)).body.access_token as string;
    expect((await launchFor({ client_id: ehrApp.id, patient: patientId }, appToken)).status).toBe(
      403,
    );
    // A role that may not read records learns nothing of them: stored or not, the same 403.
    const auditor = (await login(testApp, await createUser(testApp, ['auditor']))).access_token;
    for (const patient of [patientId, 'no-such-patient']) {
      const refused = await launchFor({ client_id: ehrApp.id, patient }, auditor);
      expect([refused.status, refused.body.issue?.[0]?.code]).toEqual([403, 'forbidden']);
    }

    const { verifier, challenge } = pkce();
    const url = authorizeUrl(challenge, { scope: 'launch patient/*.rs', launch }, ehrApp.id);
    const page = await browse(url);
    expect(page.status).toBe(200);
    expect(page.text).not.toContain('name="patient"');
    // Only the user who opened the app may sign in on it.
    const nurse = await createUser(testApp, ['nurse']);
    const wrongUser = await signIn(page, { username: nurse.username, password: nurse.password });
    expect(wrongUser.status).toBe(403);
    expect(wrongUser.location).toBeUndefined();
    const answer = await signIn(wrongUser, {
      username: doctor.username,
      password: doctor.password,
    });
    expect(answer.status).toBe(303);
    const token = await exchange(answer.location!.searchParams.get('code')!, verifier, {
      client_id: ehrApp.id,
    });
    // The launch context the ONC (g)(10) test kit reads: absent until 2026-12-06.
    expect(token.body).toMatchObject({
      scope: 'launch patient/*.rs',
      patient: patientId,
      encounter: encounter.body.id,
      need_patient_banner: true,
      smart_style_url: `${testApp.url}/smart/style.json`,
    });
    // And discovery says so (SMART's context-banner and context-style).
    const smart = await http('GET', `${fhirBase}/.well-known/smart-configuration`);
    expect(smart.body.capabilities).toEqual(
      expect.arrayContaining(['launch-ehr', 'context-banner', 'context-style']),
    );
    const style = await http('GET', token.body.smart_style_url);
    expect(style.status).toBe(200);
    expect(style.headers.get('content-type')).toMatch(/^application\/json/);
    expect(style.body).toMatchObject({
      color_background: expect.any(String),
      color_text: expect.any(String),
      font_family_body: expect.any(String),
    });
    const app = authorizedHttp(token.body.access_token);
    expect((await app('GET', `${fhirBase}/Patient/${patientId}`)).status).toBe(200);
    expect((await app('GET', `${fhirBase}/Patient/${otherPatientId}`)).status).toBe(404);

    // A launch is for its app only, and cannot be altered; without one, the launch scope is refused.
    for (const overrides of [
      { scope: 'launch patient/*.rs', launch: `${launch.slice(0, -4)}AAAA` },
      { scope: 'launch patient/*.rs' },
    ]) {
      const refused = await browse(authorizeUrl(challenge, overrides, ehrApp.id));
      expect(refused.status).toBe(303);
      expect(refused.location!.searchParams.get('error')).toMatch(/invalid_request|invalid_scope/);
    }
    const otherApp = await apps.register(
      `ehr2-${randomUUID().slice(0, 8)}`,
      [REDIRECT],
      'launch patient/*.rs',
    );
    const stolen = await browse(
      authorizeUrl(challenge, { scope: 'launch patient/*.rs', launch }, otherApp.id),
    );
    expect(stolen.location!.searchParams.get('error')).toBe('invalid_request');
  });

  it("gives an app's token no say over the account's MFA", async () => {
    const user = await createUser(testApp, ['doctor']);
    const { code, verifier } = await authorize(user);
    const app = authorizedHttp((await exchange(code, verifier)).body.access_token);
    // With a secret of its own choosing, an app would hold the user's second factor.
    const enrolled = await app('POST', `${testApp.url}/auth/mfa/enroll`);
    expect(enrolled.status).toBe(403);
    expect(enrolled.body.secret).toBeUndefined();
    // Nor may it finish an enrolment the user started themselves.
    const own = authorizedHttp((await login(testApp, user)).access_token);
    const { secret } = (await own('POST', `${testApp.url}/auth/mfa/enroll`)).body;
    const activated = await app('POST', `${testApp.url}/auth/mfa/activate`, {
      body: { code: await totpCode(secret) },
    });
    expect(activated.status).toBe(403);
    // The account still signs in with its password alone.
    expect((await login(testApp, user)).access_token).toBeDefined();
  });

  it('refuses a disabled app its sign-ins, its refresh tokens, and within seconds its access tokens', async () => {
    const name = `old-${randomUUID().slice(0, 8)}`;
    const old = await apps.register(name, [REDIRECT], 'launch/patient patient/*.rs offline_access');
    const saved = appId;
    appId = old.id;
    try {
      const { code, verifier } = await authorize(doctor);
      const token = await exchange(code, verifier);
      expect(token.status).toBe(200);
      const app = authorizedHttp(token.body.access_token);
      expect((await app('GET', `${fhirBase}/Patient/${patientId}`)).status).toBe(200);
      await apps.disable(name);
      const ended = Date.now();
      // The access token it holds stops within the status cache's 5 s, not at its expiry.
      let refusedAfter = Infinity;
      while (Date.now() - ended < 8_000) {
        if ((await app('GET', `${fhirBase}/Patient/${patientId}`)).status === 401) {
          refusedAfter = Date.now() - ended;
          break;
        }
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      expect(refusedAfter).toBeLessThan(6_000);
      // Revoked by the disable itself, not only when next presented (access ends with the
      // authorization, 164.312(a)(1)).
      const live = await db.query<unknown[]>(
        `SELECT 1 FROM refresh_token WHERE app_id = $1 AND revoked_at IS NULL`,
        [old.id],
      );
      expect(live).toHaveLength(0);
      const refreshed = await tokenRequest({
        grant_type: 'refresh_token',
        refresh_token: token.body.refresh_token,
      });
      expect(refreshed.body.error).toBe('invalid_grant');
      const page = await browse(authorizeUrl(pkce().challenge));
      expect(page.status).toBe(400);
      expect(page.location).toBeUndefined();
    } finally {
      appId = saved;
    }
  });

  it('registers apps from the admin CLI, refusing redirect URIs a code could leak from', async () => {
    const cliEnv = childEnv({
      DATABASE_URL: process.env['DATABASE_URL']!,
      PHI_MASTER_KEY: process.env['PHI_MASTER_KEY']!,
      DATA_DIR: process.env['DATA_DIR']!,
      NODE_ENV: 'test',
    });
    const name = `cli-${randomUUID().slice(0, 8)}`;
    const created = await runNode(
      BUILT.cli,
      [
        'app:create',
        '--name',
        name,
        '--redirect-uri',
        REDIRECT,
        '--redirect-uri',
        'com.example.chart:/callback',
        '--scope',
        'launch/patient patient/Observation.read offline_access',
      ],
      cliEnv,
    );
    expect(created.stderr).not.toMatch(/error/i);
    expect(created.code).toBe(0);
    const [id, listedName, scope, state, uris] = created.stdout.trim().split('\t');
    expect([listedName, scope, state, uris]).toEqual([
      name,
      'scope=launch/patient offline_access patient/Observation.rs',
      'active',
      `${REDIRECT} com.example.chart:/callback`,
    ]);
    // The other runs go through one built CLI process (see startCliHost): a start of the binary
    // costs seconds of CPU.
    const host = await startCliHost();
    try {
      const listed = await host.run(['app:list'], cliEnv);
      expect(listed.stdout).toContain(`${id}\t${name}\t`);

      const linked = await host.run(
        [
          'user:set-fhir-user',
          '--username',
          doctor.username,
          '--fhir-user',
          `Patient/${patientId}`,
        ],
        cliEnv,
      );
      expect(linked.stdout.trim()).toBe(`${doctor.username}\tfhirUser=Patient/${patientId}`);
      const missing = await host.run(
        ['user:set-fhir-user', '--username', doctor.username, '--fhir-user', 'Practitioner/nope'],
        cliEnv,
      );
      expect(missing.code).not.toBe(0);
      const both = await host.run(
        [
          'user:set-fhir-user',
          '--username',
          doctor.username,
          '--fhir-user',
          `Patient/${patientId}`,
          '--clear',
        ],
        cliEnv,
      );
      expect(both.code).not.toBe(0);
      // Refused commands are on the record by the account they aimed at, as every admin command
      // is (until 2026-12-07 these two left no row).
      const rows = await db.query<{ outcome: string; detail: string }[]>(
        `SELECT outcome, detail FROM audit_event
          WHERE source = 'cli' AND subtype = 'user:set-fhir-user' AND detail LIKE $1
          ORDER BY chain_seq`,
        [`username=${doctor.username} %`],
      );
      expect(rows).toEqual([
        { outcome: 'success', detail: `username=${doctor.username} fhirUser=Patient/${patientId}` },
        { outcome: 'failure', detail: `username=${doctor.username} fhirUser=Practitioner/nope` },
        {
          outcome: 'failure',
          detail: `username=${doctor.username} fhirUser=Patient/${patientId} clear`,
        },
      ]);
      await testApp.app.get(UsersService).setFhirUser(doctor.username, null);

      // What the CLI refuses, checked in-process (each CLI run starts the application).
      const refused = await host.run(
        [
          'app:create',
          '--name',
          `${name}-x`,
          '--redirect-uri',
          'http://app.example/cb',
          '--scope',
          'patient/*.rs',
        ],
        cliEnv,
      );
      expect(refused.code).not.toBe(0);
      for (const [uri, scopes] of [
        ['http://app.example/callback', 'patient/*.rs'],
        ['https://app.example/callback#x', 'patient/*.rs'],
        ['/relative', 'patient/*.rs'],
        [REDIRECT, 'system/*.rs'],
        [REDIRECT, 'patient/*.rs profile'],
      ] as const) {
        await expect(apps.register(`${name}-y`, [uri], scopes)).rejects.toMatchObject({
          status: 400,
        });
      }
      await expect(apps.register(`${name}-z`, [], 'patient/*.rs')).rejects.toMatchObject({
        status: 400,
      });
    } finally {
      await host.close();
    }
  });

  it('audits the sign-in as the user with the patient, leaving out the password, the identifier typed and the code', async () => {
    const marker = `pw-${randomUUID()}`;
    const user = await createUser(testApp, ['doctor']);
    const { challenge } = pkce();
    const page = await browse(authorizeUrl(challenge));
    await signIn(page, { username: user.username, password: marker, patient: mrn });
    const rows = await db.query<{ text: string }[]>(
      `SELECT row_to_json(a)::text AS text FROM audit_event a WHERE row_to_json(a)::text LIKE $1`,
      [`%${marker}%`],
    );
    expect(rows).toEqual([]);

    const requestId = randomUUID();
    const response = await fetch(`${testApp.url}/auth/authorize`, {
      method: 'POST',
      redirect: 'manual',
      body: new URLSearchParams({
        request: sealedRequest(page),
        username: user.username,
        password: user.password,
        patient: mrn,
      }).toString(),
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        'x-request-id': requestId,
      },
    });
    expect(response.status).toBe(303);
    const code = new URL(response.headers.get('location')!).searchParams.get('code')!;
    const [row] = await db.query<{ actor_user_id: string; patient_ids: string[]; text: string }[]>(
      `SELECT actor_user_id, patient_ids, row_to_json(a)::text AS text FROM audit_event a
        WHERE request_id = $1`,
      [requestId],
    );
    expect(row).toMatchObject({ actor_user_id: user.id, patient_ids: [patientId] });
    expect(row!.text).not.toContain(code);
    const withMrn = await db.query<{ text: string }[]>(
      `SELECT row_to_json(a)::text AS text FROM audit_event a WHERE row_to_json(a)::text LIKE $1`,
      [`%${mrn}%`],
    );
    expect(withMrn).toEqual([]);
  });

  describe('token introspection (RFC 7662)', () => {
    let caller: ReturnType<typeof authorizedHttp>;
    const introspect = (token: string, as = caller) =>
      as('POST', `${testApp.url}/auth/introspect`, {
        raw: new URLSearchParams({ token }).toString(),
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
      });
    /** Asks until the token is reported inactive (the status caches' 5 s); ms it took. */
    const inactiveWithin = async (token: string): Promise<number> => {
      const ended = Date.now();
      while (Date.now() - ended < 8_000) {
        if ((await introspect(token)).body.active === false) return Date.now() - ended;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      return Infinity;
    };

    beforeAll(async () => {
      // A resource server's own token: the integration role may ask about any token.
      caller = authorizedHttp(
        (await login(testApp, await createUser(testApp, ['integration']))).access_token,
      );
    });

    it("tells another account's token to no one but a resource server", async () => {
      // Any signed-in user learned any token's account, patient and liveness until 2026-12-06.
      const { code, verifier } = await authorize(doctor);
      const token = (await exchange(code, verifier)).body.access_token as string;
      const nurse = authorizedHttp(
        (await login(testApp, await createUser(testApp, ['nurse']))).access_token,
      );
      expect((await introspect(token, nurse)).body).toEqual({ active: false });
      const own = authorizedHttp((await login(testApp, doctor)).access_token);
      expect((await introspect(token, own)).body).toMatchObject({ active: true, sub: doctor.id });
      expect((await introspect(token)).body).toMatchObject({ active: true, patient: patientId });
    });

    it('is advertised in the discovery documents', async () => {
      for (const path of [
        '/.well-known/smart-configuration',
        '/.well-known/openid-configuration',
      ]) {
        expect((await http('GET', `${testApp.url}${path}`)).body.introspection_endpoint).toBe(
          `${testApp.url}/auth/introspect`,
        );
      }
    });

    it("describes an app's token as the guard sees it, and only to a caller with a token", async () => {
      const { code, verifier } = await authorize(doctor);
      const token = await exchange(code, verifier);
      expect(token.status).toBe(200);
      const requestId = randomUUID();
      const answer = await caller('POST', `${testApp.url}/auth/introspect`, {
        raw: new URLSearchParams({ token: token.body.access_token }).toString(),
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          'x-request-id': requestId,
        },
      });
      expect(answer.status).toBe(200);
      expect(answer.headers.get('cache-control')).toBe('no-store');
      const claims = decodeJwt(token.body.access_token);
      expect(answer.body).toEqual({
        active: true,
        token_type: 'Bearer',
        scope: token.body.scope,
        client_id: appId,
        sub: doctor.id,
        patient: patientId,
        iss: claims.iss,
        aud: claims.aud,
        exp: claims.exp,
        iat: claims.iat,
      });
      // Audited as the other auth endpoints are, without the token.
      const [row] = await db.query<{ subtype: string; text: string }[]>(
        `SELECT subtype, row_to_json(a)::text AS text FROM audit_event a WHERE request_id = $1`,
        [requestId],
      );
      expect(row?.subtype).toBe('token-introspection');
      expect(row!.text).not.toContain(token.body.access_token.split('.')[2]);

      expect((await introspect(token.body.refresh_token)).body).toEqual({ active: false });
      expect((await introspect('not-a-token')).body).toEqual({ active: false });
      const [header, payload, signature] = token.body.access_token.split('.');
      const forged = `${header}.${payload}.${signature.startsWith('A') ? 'B' : 'A'}${signature.slice(1)}`;
      expect((await introspect(forged)).body).toEqual({ active: false });
      const anonymous = await http('POST', `${testApp.url}/auth/introspect`, {
        raw: new URLSearchParams({ token: token.body.access_token }).toString(),
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
      });
      expect(anonymous.status).toBe(401);
      expect(JSON.stringify(anonymous.body)).not.toContain(token.body.access_token);
    });

    it('reports a token inactive once its app is disabled, or its session ended', async () => {
      const name = `intro-${randomUUID().slice(0, 8)}`;
      const registered = await apps.register(name, [REDIRECT], 'launch/patient patient/*.rs');
      const saved = appId;
      appId = registered.id;
      let appToken: string;
      try {
        const { code, verifier } = await authorize(doctor);
        appToken = (await exchange(code, verifier)).body.access_token;
      } finally {
        appId = saved;
      }
      expect((await introspect(appToken)).body.active).toBe(true);
      await apps.disable(name);
      expect(await inactiveWithin(appToken)).toBeLessThan(6_000);

      const session = await login(testApp, doctor);
      expect((await introspect(session.access_token)).body).toMatchObject({
        active: true,
        sub: doctor.id,
      });
      const out = await http('POST', `${testApp.url}/auth/logout`, {
        body: { refresh_token: session.refresh_token },
        headers: { 'content-type': 'application/json' },
      });
      expect(out.status).toBe(204);
      expect(await inactiveWithin(session.access_token)).toBeLessThan(6_000);
    });
  });
});
