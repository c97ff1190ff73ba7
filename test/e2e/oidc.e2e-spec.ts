import { createHmac, generateKeyPairSync, randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { exportJWK, exportSPKI, generateKeyPair, SignJWT, type JWK } from 'jose';
import { AuditVerifier } from '../../src/audit/audit-verifier.js';
import { buildPatient } from '../support/factories.js';
import { tokenFor } from '../support/auth.js';
import { withEnv } from '../support/env.js';
import { authorizedHttp, http } from '../support/http.js';
import { createTestApp, type TestApp } from '../support/test-app.js';

type SigningKey = Parameters<SignJWT['sign']>[0];

const b64 = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');
const AUDIENCE = 'carevault-at-st-elsewhere';

/** A local OpenID Connect issuer: discovery document and JWKS on 127.0.0.1, counting fetches. */
async function startIssuer(jwk: JWK): Promise<{ server: Server; url: string; fetches: string[] }> {
  const fetches: string[] = [];
  let url = '';
  const server = createServer((request, response) => {
    fetches.push(request.url ?? '');
    response.setHeader('content-type', 'application/json');
    if (request.url === '/realms/hospital/.well-known/openid-configuration') {
      response.end(JSON.stringify({ issuer: `${url}/realms/hospital`, jwks_uri: `${url}/jwks` }));
    } else if (request.url === '/jwks') {
      response.end(JSON.stringify({ keys: [jwk] }));
    } else {
      response.statusCode = 404;
      response.end('{}');
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  return { server, url, fetches };
}

describe('external identity provider (OIDC)', () => {
  let issuer: Awaited<ReturnType<typeof startIssuer>>;
  let issuerUrl: string;
  let testApp: TestApp;
  let restoreEnv: () => void;
  let privateKey: SigningKey;
  let publicPem: string;

  beforeAll(async () => {
    const pair = await generateKeyPair('RS256', { extractable: true });
    privateKey = pair.privateKey;
    publicPem = await exportSPKI(pair.publicKey);
    issuer = await startIssuer({
      ...(await exportJWK(pair.publicKey)),
      kid: 'idp-1',
      alg: 'RS256',
      use: 'sig',
    });
    issuerUrl = `${issuer.url}/realms/hospital`;
    restoreEnv = withEnv({
      OIDC_ISSUER: issuerUrl,
      OIDC_AUDIENCE: AUDIENCE,
      OIDC_ROLES_CLAIM: 'realm_access.roles',
      OIDC_ROLE_MAP: 'physician=doctor,ward-nurse=nurse',
    });
    testApp = await createTestApp();
  });

  afterAll(async () => {
    await testApp.close();
    restoreEnv();
    issuer.server.close();
  });

  function idpToken(
    claims: Record<string, unknown> = {},
    options: {
      key?: SigningKey;
      aud?: string;
      iss?: string;
      kid?: string;
      alg?: string;
      exp?: number | null;
      sub?: string;
    } = {},
  ): Promise<string> {
    const now = Math.floor(Date.now() / 1000);
    const jwt = new SignJWT({
      preferred_username: 'dr.house',
      realm_access: { roles: ['physician', 'offline_access'] },
      ...claims,
    })
      .setProtectedHeader({ alg: options.alg ?? 'RS256', kid: options.kid ?? 'idp-1', typ: 'JWT' })
      .setIssuer(options.iss ?? issuerUrl)
      .setAudience(options.aud ?? AUDIENCE)
      .setSubject(options.sub ?? 'f3a1c2d4-external-subject')
      .setIssuedAt(now);
    if (options.exp !== null) jwt.setExpirationTime(options.exp ?? now + 300);
    return jwt.sign(options.key ?? privateKey);
  }

  it('accepts the issuer’s tokens with mapped roles (keys found by discovery)', async () => {
    const doctor = authorizedHttp(await idpToken());
    const created = await doctor('POST', `${testApp.url}/fhir/Patient`, { body: buildPatient() });
    expect(created.status).toBe(201);
    expect((await doctor('GET', `${testApp.url}/fhir/Patient/${created.body.id}`)).status).toBe(
      200,
    );
    expect(issuer.fetches).toContain('/realms/hospital/.well-known/openid-configuration');
    expect(issuer.fetches).toContain('/jwks');
  });

  it('grants nothing for unmapped roles', async () => {
    const unmapped = authorizedHttp(await idpToken({ realm_access: { roles: ['janitor'] } }));
    expect((await unmapped('GET', `${testApp.url}/fhir/Patient/any`)).status).toBe(403);
  });

  it('refuses tokens with a wrong audience or issuer, expired or without exp, or signed otherwise', async () => {
    const now = Math.floor(Date.now() / 1000);
    const other = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    const cases: Record<string, string> = {
      'wrong audience': await idpToken({}, { aud: 'someone-else' }),
      'wrong issuer': await idpToken({}, { iss: `${issuer.url}/realms/other` }),
      expired: await idpToken({}, { exp: now - 60 }),
      'missing exp': await idpToken({}, { exp: null }),
      'another key': await idpToken({}, { key: other }),
      'unknown kid': await idpToken({}, { key: other, kid: 'idp-2' }),
      'alg none': `${b64({ alg: 'none', kid: 'idp-1' })}.${b64({ iss: issuerUrl, aud: AUDIENCE, sub: 'x', exp: now + 300, realm_access: { roles: ['physician'] } })}.`,
      'HS256 with the public key': (() => {
        const input = `${b64({ alg: 'HS256', kid: 'idp-1' })}.${b64({ iss: issuerUrl, aud: AUDIENCE, sub: 'x', exp: now + 300, realm_access: { roles: ['physician'] } })}`;
        return `${input}.${createHmac('sha256', publicPem).update(input).digest('base64url')}`;
      })(),
    };
    for (const [name, token] of Object.entries(cases)) {
      const res = await http('GET', `${testApp.url}/fhir/Patient/any`, {
        headers: { authorization: `Bearer ${token}` },
      });
      expect({ name, status: res.status }).toEqual({ name, status: 401 });
    }
  });

  it('refuses a token that brings its own key in the header', async () => {
    const { privateKey: attackerKey, publicKey } = generateKeyPairSync('ec', {
      namedCurve: 'P-256',
    });
    const token = await new SignJWT({ realm_access: { roles: ['physician'] } })
      .setProtectedHeader({ alg: 'ES256', kid: 'idp-1', jwk: await exportJWK(publicKey) })
      .setIssuer(issuerUrl)
      .setAudience(AUDIENCE)
      .setSubject('x')
      .setExpirationTime('5m')
      .sign(attackerKey);
    const res = await http('GET', `${testApp.url}/fhir/Patient/any`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(res.status).toBe(401);
  });

  it('honours the SMART scope and patient claims of external tokens', async () => {
    const doctor = authorizedHttp(await idpToken());
    const mine = (await doctor('POST', `${testApp.url}/fhir/Patient`, { body: buildPatient() }))
      .body.id;
    const theirs = (await doctor('POST', `${testApp.url}/fhir/Patient`, { body: buildPatient() }))
      .body.id;
    const app = authorizedHttp(await idpToken({ scope: 'openid patient/*.rs', patient: mine }));
    expect((await app('GET', `${testApp.url}/fhir/Patient/${mine}`)).status).toBe(200);
    expect((await app('GET', `${testApp.url}/fhir/Patient/${theirs}`)).status).toBe(404);
  });

  it('leaves the password and MFA of an external account to the identity provider', async () => {
    const doctor = authorizedHttp(await idpToken());
    const calls = [
      doctor('POST', `${testApp.url}/auth/mfa/enroll`),
      doctor('POST', `${testApp.url}/auth/mfa/activate`, { body: { code: '123456' } }),
      doctor('POST', `${testApp.url}/auth/password`, {
        body: { current_password: 'whatever it is', new_password: 'a new long passphrase' },
      }),
      doctor('POST', `${testApp.url}/auth/token/scoped`, { body: { scope: 'user/*.rs' } }),
    ];
    for (const answer of await Promise.all(calls)) {
      expect({ status: answer.status, text: answer.body.issue?.[0]?.diagnostics }).toEqual({
        status: 403,
        text: expect.stringContaining('identity provider') as unknown,
      });
    }
  });

  it('lets an account of the provider with a fresh MFA export, and only it follow the export', async () => {
    const now = Math.floor(Date.now() / 1000);
    const token = await idpToken({ amr: ['pwd', 'otp'], auth_time: now });
    const doctor = authorizedHttp(token);
    const kickOff = await doctor('GET', `${testApp.url}/fhir/Patient/$export?_type=Patient`, {
      headers: { prefer: 'respond-async' },
    });
    expect(kickOff.status).toBe(202);
    const status = kickOff.headers.get('content-location')!;
    let polled = await doctor('GET', status);
    for (let i = 0; i < 100 && polled.status === 202; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      polled = await doctor('GET', status);
    }
    expect(polled.status).toBe(200);
    const someoneElse = authorizedHttp(
      await idpToken({ amr: ['pwd', 'otp'], auth_time: now }, { sub: 'another-subject' }),
    );
    expect((await someoneElse('GET', status)).status).toBe(404);
  });

  it('takes no MFA as fresh without auth_time (iat is renewed on every refresh)', async () => {
    const doctor = authorizedHttp(await idpToken({ amr: ['pwd', 'otp'] }));
    const kickOff = await doctor('GET', `${testApp.url}/fhir/Patient/$export?_type=Patient`, {
      headers: { prefer: 'respond-async' },
    });
    expect(kickOff.status).toBe(403);
    expect(kickOff.body.issue[0].diagnostics).toContain('MFA');
  });

  it('finds what an account of the provider did by agent, a subject with a slash too', async () => {
    // Subjects are the provider's own strings (`auth0|…`, paths): one holding a `/` was refused
    // as a FHIR reference, and what that account did could not be searched by agent.
    const sub = 'hospital/staff/4711';
    const doctor = authorizedHttp(await idpToken({}, { sub }));
    const created = await doctor('POST', `${testApp.url}/fhir/Patient`, { body: buildPatient() });
    expect(created.status).toBe(201);
    const auditor = authorizedHttp(await tokenFor(testApp, 'auditor'));
    const agent = encodeURIComponent(`urn:carevault:user|oidc:${sub}`);
    const found = await auditor(
      'GET',
      `${testApp.url}/fhir/AuditEvent?agent=${agent}&patient=${String(created.body.id)}`,
    );
    expect(found.status).toBe(200);
    expect(found.body.entry).toHaveLength(1);
    expect(found.body.entry[0].resource.agent[0].who.identifier.value).toBe(`oidc:${sub}`);
    // A FHIR reference is still refused, saying what the trail records.
    const typed = await auditor('GET', `${testApp.url}/fhir/AuditEvent?agent=Practitioner/1`);
    expect(typed.status).toBe(400);
    expect(typed.body.issue[0].diagnostics).toMatch(/user id/);
  });

  it('finds an account of the provider whose subject holds a comma, written as FHIR escapes it', async () => {
    // A directory's name as the subject (an LDAP DN): its commas are FHIR's OR in a search
    // value, so the search writes them `\,`. Until 2026-12-07 any comma was refused ("agent
    // takes one value here"), and what that account did could not be searched by agent.
    const sub = `CN=Jane Doe,OU=Staff-${randomUUID().slice(0, 8)},O=Hospital`;
    const doctor = authorizedHttp(await idpToken({}, { sub }));
    const created = await doctor('POST', `${testApp.url}/fhir/Patient`, { body: buildPatient() });
    expect(created.status).toBe(201);
    const auditor = authorizedHttp(await tokenFor(testApp, 'auditor'));
    const search = (agent: string) =>
      auditor(
        'GET',
        `${testApp.url}/fhir/AuditEvent?agent=${encodeURIComponent(agent)}&patient=${String(created.body.id)}`,
      );
    for (const agent of [
      `urn:carevault:user|oidc:${sub.replaceAll(',', '\\,')}`,
      `oidc:${sub.replaceAll(',', '\\,')}`,
    ]) {
      const found = await search(agent);
      expect([agent, found.status, found.body.entry?.length]).toEqual([agent, 200, 1]);
      expect(found.body.entry[0].resource.agent[0].who.identifier.value).toBe(`oidc:${sub}`);
    }
    // Unescaped, the commas would be an OR of three values, which this search does not take.
    const unescaped = await search(`urn:carevault:user|oidc:${sub}`);
    expect(unescaped.status).toBe(400);
    expect(unescaped.body.issue[0].diagnostics).toContain('\\,');
    // The chain holds the subject as it is (JSON), and verifies.
    const verifier = testApp.app.get(AuditVerifier);
    expect((await verifier.verify(await verifier.databaseSource())).problem).toBeUndefined();
  });

  it('keeps CareVault’s own tokens working alongside', async () => {
    const local = authorizedHttp(await tokenFor(testApp, 'doctor'));
    expect((await local('GET', `${testApp.url}/fhir/Patient/none`)).status).toBe(404);
  });
});
