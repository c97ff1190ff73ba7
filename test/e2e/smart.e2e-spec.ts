import { createServer, type Server } from 'node:http';
import { Client } from 'fhir-kit-client';
import { createUser, login } from '../support/auth.js';
import { withEnv } from '../support/env.js';
import { http } from '../support/http.js';
import { createTestApp, type TestApp } from '../support/test-app.js';

const OAUTH_URIS = 'http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris';

interface Security {
  service: { coding: { code: string }[] }[];
  extension: { url: string; extension: { url: string; valueUri: string }[] }[];
}

/** The `oauth-uris` of a CapabilityStatement, as name to URI. */
async function oauthUris(testApp: TestApp): Promise<Record<string, string>> {
  const metadata = await http('GET', `${testApp.url}/fhir/metadata`);
  const security = metadata.body.rest[0].security as Security;
  expect(security.service[0]!.coding[0]!.code).toBe('SMART-on-FHIR');
  const uris = security.extension.find((extension) => extension.url === OAUTH_URIS)!.extension;
  return Object.fromEntries(uris.map((uri) => [uri.url, uri.valueUri]));
}

function tokenRequest(testApp: TestApp, form: Record<string, string>) {
  return http('POST', `${testApp.url}/auth/token`, {
    raw: new URLSearchParams(form).toString(),
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
  });
}

describe('SMART discovery and the OAuth token endpoint', () => {
  let testApp: TestApp;

  beforeAll(async () => {
    testApp = await createTestApp();
  });

  afterAll(async () => {
    await testApp.close();
  });

  it('publishes the same configuration at the root and under the FHIR base, consistent with the CapabilityStatement', async () => {
    const root = await http('GET', `${testApp.url}/.well-known/smart-configuration`);
    expect(root.status).toBe(200);
    expect(root.headers.get('content-type')).toContain('application/json');
    const underFhir = await http('GET', `${testApp.url}/fhir/.well-known/smart-configuration`);
    expect(underFhir.body).toEqual(root.body);
    expect(root.body).toMatchObject({
      token_endpoint: `${testApp.url}/auth/token`,
      jwks_uri: `${testApp.url}/.well-known/jwks.json`,
      authorization_endpoint: `${testApp.url}/auth/authorize`,
      grant_types_supported: ['authorization_code', 'refresh_token', 'client_credentials'],
      capabilities: expect.arrayContaining(['permission-v2', 'permission-patient']),
      scopes_supported: expect.arrayContaining(['patient/*.rs', 'user/*.cruds']),
    });
    // CareVault's own authorization endpoint: standalone and EHR launch, with OpenID Connect.
    expect(root.body.capabilities).toEqual(
      expect.arrayContaining(['launch-standalone', 'launch-ehr', 'sso-openid-connect']),
    );
    // SMART 2.0: with sso-openid-connect, `issuer` is required, and is the id_token's `iss`.
    const openid = await http('GET', `${testApp.url}/.well-known/openid-configuration`);
    expect(root.body.issuer).toBe(openid.body.issuer);
    expect(root.body.issuer).toBe(testApp.url);
    expect(root.body.scopes_supported).toEqual(
      expect.arrayContaining(['openid', 'fhirUser', 'launch']),
    );

    expect(await oauthUris(testApp)).toEqual({
      authorize: root.body.authorization_endpoint,
      token: root.body.token_endpoint,
      introspect: root.body.introspection_endpoint,
    });
    expect(root.body.introspection_endpoint).toBe(`${testApp.url}/auth/introspect`);
    // What a FHIR client library finds by itself, from the FHIR base URL alone.
    const metadata = await new Client({ baseUrl: `${testApp.url}/fhir` }).smartAuthMetadata();
    expect(String(metadata.tokenUrl)).toBe(root.body.token_endpoint);
    expect((await http('GET', `${root.body.jwks_uri}`)).body.keys.length).toBeGreaterThan(0);
  });

  it('renews a session at the token endpoint with the refresh_token grant, answering OAuth errors', async () => {
    const session = await login(testApp, await createUser(testApp, ['doctor']));
    const renewed = await tokenRequest(testApp, {
      grant_type: 'refresh_token',
      refresh_token: session.refresh_token,
    });
    expect(renewed.status).toBe(200);
    expect(renewed.headers.get('cache-control')).toBe('no-store');
    expect(renewed.body).toMatchObject({ token_type: 'Bearer', expires_in: expect.any(Number) });
    expect(renewed.body.refresh_token).not.toBe(session.refresh_token);
    const read = await http('GET', `${testApp.url}/fhir/Patient?_count=1`, {
      headers: { authorization: `Bearer ${renewed.body.access_token}` },
    });
    expect(read.status).toBe(200);

    // A used refresh token is refused as RFC 6749 says, and the reuse ends the session.
    const reused = await tokenRequest(testApp, {
      grant_type: 'refresh_token',
      refresh_token: session.refresh_token,
    });
    expect(reused.status).toBe(400);
    expect(reused.body).toEqual({
      error: 'invalid_grant',
      error_description: 'Invalid or expired refresh token',
    });
    const afterReuse = await tokenRequest(testApp, {
      grant_type: 'refresh_token',
      refresh_token: renewed.body.refresh_token,
    });
    expect(afterReuse.body.error).toBe('invalid_grant');

    for (const [form, error] of [
      [{}, 'invalid_request'],
      [{ grant_type: 'password', username: 'x', password: 'y' }, 'unsupported_grant_type'],
      [{ grant_type: 'authorization_code', code: 'abc' }, 'invalid_request'],
      [{ grant_type: 'refresh_token' }, 'invalid_request'],
      [{ grant_type: 'refresh_token', refresh_token: 'x', scope: 'user/*.cruds' }, 'invalid_grant'],
    ] as const) {
      const res = await tokenRequest(testApp, form);
      expect({ form, status: res.status, error: res.body.error }).toEqual({
        form,
        status: 400,
        error,
      });
    }
    // A person's own session has no scope to narrow; its refresh token stays usable.
    const own = await login(testApp, await createUser(testApp, ['doctor']));
    const scoped = await tokenRequest(testApp, {
      grant_type: 'refresh_token',
      refresh_token: own.refresh_token,
      scope: 'user/*.rs',
    });
    expect(scoped.body.error).toBe('invalid_scope');
    const plain = { grant_type: 'refresh_token', refresh_token: own.refresh_token };
    expect((await tokenRequest(testApp, plain)).status).toBe(200);
  });
});

describe('SMART discovery with an identity provider (OIDC_ISSUER)', () => {
  let provider: Server;
  let providerUrl: string;
  let testApp: TestApp;
  let restoreEnv: () => void;

  beforeAll(async () => {
    provider = createServer((request, response) => {
      response.setHeader('content-type', 'application/json');
      if (request.url !== '/realms/hospital/.well-known/openid-configuration') {
        response.statusCode = 404;
        response.end('{}');
        return;
      }
      const issuer = `${providerUrl}/realms/hospital`;
      response.end(
        JSON.stringify({
          issuer,
          authorization_endpoint: `${issuer}/protocol/openid-connect/auth`,
          token_endpoint: `${issuer}/protocol/openid-connect/token`,
          jwks_uri: `${issuer}/protocol/openid-connect/certs`,
          grant_types_supported: ['authorization_code', 'refresh_token', 'password', 'implicit'],
          code_challenge_methods_supported: ['plain', 'S256'],
          token_endpoint_auth_methods_supported: ['client_secret_basic', 'private_key_jwt', 'none'],
        }),
      );
    });
    await new Promise<void>((resolve) => provider.listen(0, '127.0.0.1', resolve));
    providerUrl = `http://127.0.0.1:${(provider.address() as { port: number }).port}`;
    restoreEnv = withEnv({
      OIDC_ISSUER: `${providerUrl}/realms/hospital`,
      OIDC_AUDIENCE: 'carevault',
    });
    testApp = await createTestApp();
  });

  afterAll(async () => {
    await testApp.close();
    restoreEnv();
    provider.close();
  });

  it("points apps at the provider's endpoints, keeps only what SMART allows, and the CapabilityStatement agrees", async () => {
    const issuer = `${providerUrl}/realms/hospital`;
    const smart = await http('GET', `${testApp.url}/.well-known/smart-configuration`);
    expect(smart.body).toMatchObject({
      issuer,
      authorization_endpoint: `${issuer}/protocol/openid-connect/auth`,
      token_endpoint: `${issuer}/protocol/openid-connect/token`,
      jwks_uri: `${issuer}/protocol/openid-connect/certs`,
      // No password or implicit grant, no plain PKCE: SMART forbids them.
      grant_types_supported: ['authorization_code', 'refresh_token'],
      code_challenge_methods_supported: ['S256'],
    });
    expect(smart.body.capabilities).toEqual(
      expect.arrayContaining([
        'launch-standalone',
        'client-public',
        'client-confidential-symmetric',
        'client-confidential-asymmetric',
        'sso-openid-connect',
        'permission-v2',
      ]),
    );
    // The provider's launches carry no need_patient_banner or smart_style_url of ours.
    expect(smart.body.capabilities).not.toContain('context-banner');
    expect(smart.body.capabilities).not.toContain('context-style');
    expect(await oauthUris(testApp)).toEqual({
      authorize: smart.body.authorization_endpoint,
      token: smart.body.token_endpoint,
    });
  });
});
