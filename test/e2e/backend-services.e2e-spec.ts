import { randomUUID } from 'node:crypto';
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getDataSourceToken } from '@nestjs/typeorm';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import type { DataSource } from 'typeorm';
import { BackendClientsService } from '../../src/auth/backend-clients/backend-clients.service.js';
import { UserRepository } from '../../src/auth/user.repository.js';
import { ExportRepository } from '../../src/fhir/export/export.repository.js';
import { FhirDefinitions } from '../../src/fhir/fhir-definitions.js';
import type { FhirResource } from '../../src/fhir/fhir-types.js';
import { createUser, enableMfa, loginWithMfa, tokenFor, type TestUser } from '../support/auth.js';
import { authorizedHttp, http, type HttpResult } from '../support/http.js';
import { BUILT, childEnv, runNode } from '../support/process.js';
import { withEnv } from '../support/env.js';
import { createTestApp, type TestApp } from '../support/test-app.js';

const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

interface ClientKey {
  kid: string;
  alg: string;
  privateKey: CryptoKey;
  publicJwk: JWK;
}

async function clientKey(alg: string, kid = `k-${randomUUID().slice(0, 8)}`): Promise<ClientKey> {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
  return { kid, alg, privateKey, publicJwk: { ...(await exportJWK(publicKey)), kid } };
}

describe('SMART Backend Services: client_credentials with a signed assertion', () => {
  let testApp: TestApp;
  let db: DataSource;
  let clients: BackendClientsService;
  let tokenUrl: string;
  let account: TestUser;
  let key: ClientKey;
  let clientId: string;

  /** A client assertion as SMART describes it; `claims` and `header` override the defaults. */
  async function assertion(
    options: {
      client?: string;
      signer?: ClientKey;
      claims?: Record<string, unknown>;
      header?: Record<string, unknown>;
      expiresIn?: number;
    } = {},
  ): Promise<string> {
    const signer = options.signer ?? key;
    const client = options.client ?? clientId;
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({
      iss: client,
      sub: client,
      aud: tokenUrl,
      jti: randomUUID(),
      exp: now + (options.expiresIn ?? 240),
      ...options.claims,
    })
      .setProtectedHeader({ alg: signer.alg, kid: signer.kid, typ: 'JWT', ...options.header })
      .sign(signer.privateKey);
  }

  function tokenRequest(form: Record<string, string>): Promise<HttpResult> {
    return http('POST', tokenUrl, {
      raw: new URLSearchParams(form).toString(),
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
  }

  const clientToken = async (scope: string, signed?: string): Promise<HttpResult> =>
    tokenRequest({
      grant_type: 'client_credentials',
      client_assertion_type: JWT_BEARER,
      client_assertion: signed ?? (await assertion()),
      scope,
    });

  /** The OAuth error of a refused request, with its status. */
  const refusal = (res: HttpResult): string =>
    `${res.status} ${res.body?.error}: ${res.body?.error_description}`;

  beforeAll(async () => {
    testApp = await createTestApp();
    db = testApp.app.get<DataSource>(getDataSourceToken());
    clients = testApp.app.get(BackendClientsService);
    tokenUrl = `${testApp.url}/auth/token`;
    account = await createUser(testApp, ['exporter']);
    key = await clientKey('ES384');

    // Registered the way an administrator does it: the admin CLI, with the public keys in a file.
    const dir = await mkdtemp(join(tmpdir(), 'cv-client-'));
    try {
      const jwksFile = join(dir, 'jwks.json');
      await writeFile(jwksFile, JSON.stringify({ keys: [key.publicJwk] }));
      const name = `warehouse-${randomUUID().slice(0, 8)}`;
      const cliEnv = childEnv({
        DATABASE_URL: process.env['DATABASE_URL']!,
        PHI_MASTER_KEY: process.env['PHI_MASTER_KEY']!,
        DATA_DIR: process.env['DATA_DIR']!,
        NODE_ENV: 'test',
      });
      const created = await runNode(
        BUILT.cli,
        [
          'client:create',
          '--name',
          name,
          '--user',
          account.username,
          '--jwks-file',
          jwksFile,
          '--scope',
          'system/*.rs',
        ],
        cliEnv,
      );
      expect(created.stderr).not.toMatch(/error/i);
      expect(created.code).toBe(0);
      const [id, listedName, user, scope, state, kids] = created.stdout.trim().split('\t');
      expect([listedName, user, scope, state, kids]).toEqual([
        name,
        `user=${account.username}`,
        'scope=system/*.rs',
        'active',
        `keys=${key.kid}`,
      ]);
      clientId = id!;
      const listed = await runNode(BUILT.cli, ['client:list'], cliEnv);
      expect(listed.stdout).toContain(`${clientId}\t${name}\t`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  afterAll(async () => {
    await testApp.close();
  });

  it('advertises the grant, the client authentication and its algorithms in the SMART configuration', async () => {
    const smart = await http('GET', `${testApp.url}/fhir/.well-known/smart-configuration`);
    expect(smart.body).toMatchObject({
      token_endpoint: tokenUrl,
      grant_types_supported: expect.arrayContaining(['client_credentials']),
      token_endpoint_auth_methods_supported: expect.arrayContaining(['private_key_jwt']),
      token_endpoint_auth_signing_alg_values_supported: expect.arrayContaining(['ES384', 'RS384']),
      scopes_supported: expect.arrayContaining(['system/*.rs']),
      capabilities: expect.arrayContaining(['client-confidential-asymmetric', 'permission-v2']),
    });
  });

  it('issues a five-minute token for the granted system scopes, bounded by the scopes and the role', async () => {
    const issued = await clientToken(
      'system/Patient.rs system/Group.cruds system/Observation.read',
    );
    expect(issued.status).toBe(200);
    expect(issued.headers.get('cache-control')).toBe('no-store');
    // Narrowed to what the client was registered for: no refresh token.
    expect(issued.body).toEqual({
      access_token: expect.any(String),
      token_type: 'bearer',
      expires_in: expect.any(Number),
      scope: 'system/Patient.rs system/Group.rs system/Observation.rs',
    });
    expect(issued.body.expires_in).toBeLessThanOrEqual(300);
    const authorization = `Bearer ${issued.body.access_token}`;
    const get = (path: string) =>
      http('GET', `${testApp.url}${path}`, { headers: { authorization } });

    expect((await get('/fhir/Patient?_count=1')).status).toBe(200);
    expect((await get('/fhir/Observation?_count=1')).status).toBe(200);
    // Outside the granted scopes.
    expect((await get('/fhir/Condition?_count=1')).status).toBe(403);
    // Granted read only; the exporter role does not write either.
    const created = await http('POST', `${testApp.url}/fhir/Patient`, {
      headers: { authorization },
      body: { resourceType: 'Patient', active: true },
    });
    expect(created.status).toBe(403);
    // A client acts as a system: no user administration, no break-glass.
    expect((await get('/admin/users')).status).toBe(403);

    // The token request and the reads are audited as the client's account, naming the client.
    const rows = await db.query<
      { subtype: string; actor_name: string; actor_scope: string | null; status_code: number }[]
    >(
      `SELECT subtype, actor_name, actor_scope, status_code FROM audit_event
        WHERE actor_user_id = $1 ORDER BY recorded_at`,
      [account.id],
    );
    expect(rows[0]).toMatchObject({
      subtype: 'client-credentials',
      actor_name: account.username,
      status_code: 200,
    });
    const search = rows.find((row) => row.subtype === 'search-type' && row.status_code === 200)!;
    expect(search.actor_scope).toContain(`client=${clientId}`);
    expect(search.actor_scope).toContain('system/Patient.rs');
  });

  it("lets an exporter client take a Bulk Data export without a person's MFA", async () => {
    const doctor = await createUser(testApp, ['doctor']);
    const secret = await enableMfa(testApp, doctor);
    const doctorAuth = `Bearer ${(await loginWithMfa(testApp, doctor, secret)).access_token}`;
    const family = `Backend-${randomUUID().slice(0, 8)}`;
    const patient = await http('POST', `${testApp.url}/fhir/Patient`, {
      headers: { authorization: doctorAuth },
      body: { resourceType: 'Patient', name: [{ family }] },
    });
    const group = await http('POST', `${testApp.url}/fhir/Group`, {
      headers: { authorization: doctorAuth },
      body: {
        resourceType: 'Group',
        type: 'person',
        actual: true,
        member: [{ entity: { reference: `Patient/${patient.body.id}` } }],
      },
    });
    expect(group.status).toBe(201);

    const issued = await clientToken('system/Patient.rs system/Group.rs');
    const authorization = `Bearer ${issued.body.access_token}`;
    const kickOff = await http(
      'GET',
      `${testApp.url}/fhir/Group/${group.body.id}/$export?_type=Patient`,
      {
        headers: { authorization, prefer: 'respond-async', accept: 'application/fhir+json' },
      },
    );
    expect(kickOff.status).toBe(202);
    const status = kickOff.headers.get('content-location')!;
    let manifest: HttpResult | undefined;
    for (let attempt = 0; attempt < 200 && manifest?.status !== 200; attempt++) {
      manifest = await http('GET', status, { headers: { authorization } });
      if (manifest.status !== 200) await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(manifest!.status).toBe(200);
    const [output] = manifest!.body.output as { type: string; url: string }[];
    expect(output!.type).toBe('Patient');
    const file = await http('GET', output!.url, { headers: { authorization } });
    expect(file.text).toContain(family);

    // Another client acting as the same account, with the same scopes, is not the job's owner:
    // the export is what one system asked for, and another system reads its own (until
    // 2026-12-07 it polled, downloaded and cancelled this one).
    const otherKey = await clientKey('ES256');
    const other = await clients.register(
      `registry-${randomUUID().slice(0, 8)}`,
      account.username,
      { jwks: { keys: [otherKey.publicJwk] } },
      'system/*.rs',
    );
    const otherToken = await clientToken(
      'system/Patient.rs system/Group.rs',
      await assertion({ client: other.id, signer: otherKey }),
    );
    const otherAuth = { authorization: `Bearer ${otherToken.body.access_token}` };
    expect((await http('GET', status, { headers: otherAuth })).status).toBe(404);
    expect((await http('GET', output!.url, { headers: otherAuth })).status).toBe(404);
    expect((await http('DELETE', status, { headers: otherAuth })).status).toBe(404);
    expect((await http('GET', status, { headers: { authorization } })).status).toBe(200);
  });

  it('stops a running export of a client once the client is disabled, as no token can open it', async () => {
    const user = await createUser(testApp, ['exporter']);
    const signer = await clientKey('ES256');
    const name = `nightly-${randomUUID().slice(0, 8)}`;
    const client = await clients.register(
      name,
      user.username,
      { jwks: { keys: [signer.publicJwk] } },
      'system/*.rs',
    );
    // A job of the client, running (on this instance or another): the runner asks before each
    // page it reads whether it may read on.
    const job = randomUUID();
    await db.query(
      `INSERT INTO export_job (id, user_id, client_id, session_epoch, level, status, progress,
                               transaction_time, request_url, base_url, heartbeat_at)
       VALUES ($1, $2, $3, 0, 'system', 'in-progress', 'exporting Patient', now(), $4, $4, now())`,
      [job, user.id, client.id, `${testApp.url}/fhir`],
    );
    const exports = testApp.app.get(ExportRepository);
    expect(await exports.failIfSessionsEnded(job)).toBe(false);
    // Its tokens stop within seconds; until 2026-12-07 the job read and stored PHI on, in files
    // that no token could open any more.
    await clients.disable(name);
    expect(await exports.failIfSessionsEnded(job)).toBe(true);
    const rows = await db.query<{ status: string }[]>(
      'SELECT status FROM export_job WHERE id = $1',
      [job],
    );
    expect(rows).toEqual([{ status: 'failed' }]);
  });

  it('lets an auditor list what one client did, apart from another client of the same account', async () => {
    const user = await createUser(testApp, ['integration']);
    const [oneKey, otherKey] = [await clientKey('ES256'), await clientKey('ES256')];
    const register = (signer: ClientKey) =>
      clients.register(
        `feed-${randomUUID().slice(0, 8)}`,
        user.username,
        { jwks: { keys: [signer.publicJwk] } },
        'system/Patient.rs',
      );
    const [one, other] = [await register(oneKey), await register(otherKey)];
    const read = async (client: string, signer: ClientKey, path: string): Promise<void> => {
      const issued = await clientToken('system/Patient.rs', await assertion({ client, signer }));
      const res = await http('GET', `${testApp.url}${path}`, {
        headers: { authorization: `Bearer ${issued.body.access_token}` },
      });
      expect(res.status).toBe(200);
    };
    await read(one.id, oneKey, '/fhir/Patient?_count=1');
    await read(other.id, otherKey, '/fhir/Patient?_count=2');
    // A refused token request is the client's too: its row names the client it claimed to be.
    const forged = await clientToken(
      'system/Patient.rs',
      await assertion({ client: one.id, signer: otherKey, header: { kid: oneKey.kid } }),
    );
    expect(forged.status).toBe(401);

    const auditor = authorizedHttp(await tokenFor(testApp, 'auditor'));
    const search = await auditor(
      'GET',
      `${testApp.url}/fhir/AuditEvent?agent=${encodeURIComponent(`urn:carevault:client|${one.id}`)}`,
    );
    expect(search.status).toBe(200);
    const events = (search.body.entry as { resource: FhirResource & Record<string, any> }[]).map(
      (entry) => entry.resource,
    );
    // Newest first: the forged token request, the search, and the token request before it.
    expect(events.map((event) => [event['subtype'][0].code, event['outcome']])).toEqual([
      ['client-credentials', '4'],
      ['search-type', '0'],
      ['client-credentials', '0'],
    ]);
    const definitions = testApp.app.get(FhirDefinitions);
    for (const event of events) {
      expect(() => definitions.validate(event)).not.toThrow();
      // BALP's client agent beside the account's.
      expect(event['agent']).toEqual([
        expect.objectContaining({ who: expect.objectContaining({ display: user.username }) }),
        {
          type: {
            coding: [
              {
                system: 'http://dicom.nema.org/resources/ontology/DCM',
                code: '110150',
                display: 'Application',
              },
            ],
          },
          who: { identifier: { system: 'urn:carevault:client', value: one.id } },
          requestor: false,
        },
      ]);
    }
  });

  it('refuses forged, replayed, misdirected and stale assertions with invalid_client', async () => {
    const once = await assertion();
    expect((await clientToken('system/*.rs', once)).status).toBe(200);
    expect(refusal(await clientToken('system/*.rs', once))).toBe(
      '401 invalid_client: client_assertion: this jti was used already',
    );

    const other = await clientToken(
      'system/*.rs',
      await assertion({ claims: { aud: `${testApp.url}/fhir` } }),
    );
    expect(refusal(other)).toBe(
      '401 invalid_client: client_assertion: aud claim: unexpected value',
    );
    expect(refusal(await clientToken('system/*.rs', await assertion({ expiresIn: 900 })))).toBe(
      '401 invalid_client: client_assertion: exp is more than five minutes ahead',
    );
    expect(refusal(await clientToken('system/*.rs', await assertion({ expiresIn: -120 })))).toBe(
      '401 invalid_client: client_assertion: it has expired',
    );
    expect(
      refusal(await clientToken('system/*.rs', await assertion({ claims: { jti: undefined } }))),
    ).toBe('401 invalid_client: client_assertion: jti claim: missing');
    // Signed by a key the client never registered, under a registered kid or another.
    const impostor = await clientKey('ES384', key.kid);
    expect(refusal(await clientToken('system/*.rs', await assertion({ signer: impostor })))).toBe(
      '401 invalid_client: client_assertion: the signature does not verify',
    );
    const unknownKid = await clientKey('ES384');
    expect(refusal(await clientToken('system/*.rs', await assertion({ signer: unknownKid })))).toBe(
      '401 invalid_client: client_assertion: no registered key has this kid and alg',
    );
    // A key of its own in the header, an HMAC, another client's id as subject, an unknown client.
    const jku = await assertion({ header: { jku: 'https://attacker.example/jwks.json' } });
    expect(refusal(await clientToken('system/*.rs', jku))).toBe(
      '401 invalid_client: client_assertion: jku is not the JWKS URL registered for this client',
    );
    const embedded = await assertion({ header: { jwk: key.publicJwk } });
    expect(refusal(await clientToken('system/*.rs', embedded))).toMatch(
      /^401 invalid_client: client_assertion names keys of its own/,
    );
    const hmac = await new SignJWT({
      iss: clientId,
      sub: clientId,
      aud: tokenUrl,
      jti: randomUUID(),
    })
      .setProtectedHeader({ alg: 'HS256', kid: key.kid })
      .setExpirationTime('2m')
      .sign(new TextEncoder().encode('a shared secret that nobody registered'));
    expect(refusal(await clientToken('system/*.rs', hmac))).toMatch(
      /^401 invalid_client: client_assertion: alg must be one of ES384, RS384/,
    );
    expect(
      refusal(await clientToken('system/*.rs', await assertion({ claims: { sub: randomUUID() } }))),
    ).toBe('401 invalid_client: client_assertion: iss and sub must both be the client id');
    // A client_id beside the assertion names the same client (RFC 7521 4.2), or is refused.
    const named = (client_id: string) =>
      assertion().then((signed) =>
        tokenRequest({
          grant_type: 'client_credentials',
          client_assertion_type: JWT_BEARER,
          client_assertion: signed,
          scope: 'system/*.rs',
          client_id,
        }),
      );
    expect(refusal(await named(randomUUID()))).toBe(
      '401 invalid_client: client_id names another client than the client_assertion',
    );
    expect((await named(clientId)).status).toBe(200);
    expect(
      refusal(await clientToken('system/*.rs', await assertion({ client: randomUUID() }))),
    ).toBe('401 invalid_client: Unknown client');
    expect(refusal(await clientToken('system/*.rs', 'not-a-jwt'))).toBe(
      '401 invalid_client: client_assertion is not a signed JWT',
    );
    expect(
      refusal(
        await tokenRequest({
          grant_type: 'client_credentials',
          client_assertion: once,
          scope: 'system/*.rs',
        }),
      ),
    ).toMatch(/^400 invalid_request: client_assertion_type must be/);
  });

  it('checks the audience against PUBLIC_URL, not against the Host header its sender chose', async () => {
    const publicUrl = 'https://ehr.example.org';
    const restore = withEnv({ PUBLIC_URL: publicUrl });
    let pinned: TestApp;
    try {
      pinned = await createTestApp();
    } finally {
      restore();
    }
    try {
      // fetch sets Host itself: node:http sends the one a forger would.
      const send = (method: string, path: string, host: string, form?: Record<string, string>) =>
        new Promise<HttpResult>((resolve, reject) => {
          const body = form ? new URLSearchParams(form).toString() : undefined;
          const req = request(
            `${pinned.url}${path}`,
            {
              method,
              headers: {
                host,
                ...(body ? { 'content-type': 'application/x-www-form-urlencoded' } : {}),
              },
            },
            (res) => {
              let text = '';
              res.on('data', (chunk: Buffer) => (text += chunk.toString()));
              res.on('end', () =>
                resolve({
                  status: res.statusCode!,
                  headers: new Headers(),
                  body: JSON.parse(text) as unknown,
                  text,
                }),
              );
            },
          );
          req.on('error', reject);
          req.end(body);
        });
      const post = async (signed: string, host: string) =>
        send('POST', '/auth/token', host, {
          grant_type: 'client_credentials',
          client_assertion_type: JWT_BEARER,
          client_assertion: signed,
          scope: 'system/*.rs',
        });
      // Made for another token endpoint, replayed here under that endpoint's Host: refused.
      const elsewhere = await assertion({ claims: { aud: 'http://evil.example/auth/token' } });
      expect(refusal(await post(elsewhere, 'evil.example'))).toBe(
        '401 invalid_client: client_assertion: aud claim: unexpected value',
      );
      const ours = await assertion({ claims: { aud: `${publicUrl}/auth/token` } });
      expect((await post(ours, 'evil.example')).status).toBe(200);
      const discovery = await send('GET', '/.well-known/smart-configuration', 'evil.example');
      expect(discovery.body.token_endpoint).toBe(`${publicUrl}/auth/token`);
    } finally {
      await pinned.close();
    }
  });

  it('grants only system scopes within the registration, and refuses the rest with invalid_scope', async () => {
    expect((await clientToken('system/*.cruds')).body.scope).toBe('system/*.rs');
    expect(refusal(await clientToken('user/*.rs'))).toBe(
      '400 invalid_scope: A backend client is granted system/ scopes only',
    );
    expect(refusal(await clientToken('system/Patient.cud'))).toBe(
      '400 invalid_scope: None of the requested scopes is allowed for this client (at most: system/*.rs)',
    );
    expect(refusal(await clientToken('system/Observation.rs?category=laboratory'))).toMatch(
      /^400 invalid_scope: Scopes with search parameters/,
    );
    expect(refusal(await clientToken(' '))).toBe('400 invalid_scope: scope is required');
  });

  it("takes RSA keys, rotates keys, and stops a disabled client or one whose account became a person's", async () => {
    const user = await createUser(testApp, ['integration']);
    const rsa = await clientKey('RS384');
    const name = `lab-${randomUUID().slice(0, 8)}`;
    const registered = await clients.register(
      name,
      user.username,
      { jwks: { keys: [rsa.publicJwk] } },
      'system/Observation.cruds',
    );
    const signed = (signer: ClientKey) => assertion({ client: registered.id, signer });
    expect((await clientToken('system/Observation.cu', await signed(rsa))).body.scope).toBe(
      'system/Observation.cu',
    );

    // Rotation: the new key is added, then the old one dropped.
    const next = await clientKey('ES256');
    await clients.setKeys(name, { jwks: { keys: [rsa.publicJwk, next.publicJwk] } });
    expect((await clientToken('system/Observation.r', await signed(next))).status).toBe(200);
    await clients.setKeys(name, { jwks: { keys: [next.publicJwk] } });
    expect(refusal(await clientToken('system/Observation.r', await signed(rsa)))).toBe(
      '401 invalid_client: client_assertion: no registered key has this kid and alg',
    );

    // An account given a person's role after registration: its client is refused.
    const users = testApp.app.get(UserRepository);
    await users.update(user.id, { roles: ['integration', 'doctor'] });
    expect(refusal(await clientToken('system/Observation.r', await signed(next)))).toBe(
      "401 invalid_client: The client's account holds a role a backend client cannot act in",
    );
    await users.update(user.id, { roles: ['integration'] });
    expect((await clientToken('system/Observation.r', await signed(next))).status).toBe(200);

    const held = (await clientToken('system/Observation.rs', await signed(next))).body;
    await clients.disable(name);
    expect(refusal(await clientToken('system/Observation.r', await signed(next)))).toBe(
      '401 invalid_client: This client is disabled',
    );
    // Nor does the token it already holds work on (within seconds: see the SMART app's test).
    const read = await http('GET', `${testApp.url}/fhir/Observation?_count=1`, {
      headers: { authorization: `Bearer ${held.access_token}` },
    });
    expect(read.status).toBe(401);
    // A client that asks no more leaves its expired spent assertions: another's spend clears them.
    await db.query(
      `INSERT INTO backend_client_assertion (client_id, jti, expires_at)
       VALUES ($1, 'expired', now() - interval '1 minute')`,
      [registered.id],
    );
    expect((await clientToken('system/*.rs')).status).toBe(200);
    const expired = await db.query<unknown[]>(
      `SELECT 1 FROM backend_client_assertion WHERE client_id = $1 AND expires_at < now()`,
      [registered.id],
    );
    expect(expired).toHaveLength(0);
    // Its state is told only to whoever holds its key.
    const forged = await signed(await clientKey('ES256', next.kid));
    expect(refusal(await clientToken('system/Observation.r', forged))).toBe(
      '401 invalid_client: client_assertion: the signature does not verify',
    );
  });

  it('registers only public keys, system scopes and system accounts', async () => {
    const user = await createUser(testApp, ['exporter']);
    const doctor = await createUser(testApp, ['doctor']);
    const { privateKey } = await generateKeyPair('ES384', { extractable: true });
    const keys = { jwks: { keys: [key.publicJwk] } };
    const name = (): string => `c-${randomUUID().slice(0, 8)}`;
    await expect(clients.register(name(), doctor.username, keys, 'system/*.rs')).rejects.toThrow(
      /cannot act as an account with the role doctor/,
    );
    await expect(
      clients.register(
        name(),
        user.username,
        { jwks: { keys: [{ ...(await exportJWK(privateKey)), kid: 'p' }] } },
        'system/*.rs',
      ),
    ).rejects.toThrow(/jwks: key 1 has "d": register public keys only/);
    await expect(clients.register(name(), user.username, keys, 'user/*.rs')).rejects.toThrow(
      /system\/ scopes only/,
    );
    await expect(
      clients.register(name(), user.username, keys, 'system/*.rs launch'),
    ).rejects.toThrow(/one or more SMART system scopes/);
    await expect(clients.register(name(), 'nobody-here', keys, 'system/*.rs')).rejects.toThrow(
      /No user/,
    );
    await expect(
      clients.register(
        name(),
        user.username,
        { jwksUrl: 'http://keys.example.org/jwks' },
        'system/*.rs',
      ),
    ).rejects.toThrow(/jwks-url: an https URL \(http only on loopback\)/);
  });

  it('reads the keys a client publishes at its JWKS URL, and follows its rotation there', async () => {
    let published: JWK[] = [];
    let fetches = 0;
    let clientOfUrl: string | undefined;
    const server = createServer((request, response) => {
      fetches++;
      response.setHeader('content-type', 'application/json');
      response.end(JSON.stringify({ keys: published }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const jwksUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks.json`;
      const first = await clientKey('RS384');
      published = [first.publicJwk];
      const user = await createUser(testApp, ['exporter']);
      const name = `registry-${randomUUID().slice(0, 8)}`;
      const registered = await clients.register(name, user.username, { jwksUrl }, 'system/*.rs');
      expect(registered.keys).toBe(`jwks_url=${jwksUrl}`);
      clientOfUrl = registered.id;
      const signed = (signer: ClientKey, header: Record<string, unknown> = {}) =>
        assertion({ client: registered.id, signer, header });

      expect((await clientToken('system/Patient.rs', await signed(first))).status).toBe(200);
      // A jku, when given, must be the registered URL.
      expect(
        (await clientToken('system/Patient.rs', await signed(first, { jku: jwksUrl }))).status,
      ).toBe(200);
      expect(
        refusal(
          await clientToken('system/Patient.rs', await signed(first, { jku: `${jwksUrl}?x` })),
        ),
      ).toBe(
        '401 invalid_client: client_assertion: jku is not the JWKS URL registered for this client',
      );

      // The client rotates on its own: a new key published is found once the cooldown has passed.
      const second = await clientKey('ES384');
      published = [first.publicJwk, second.publicJwk];
      await new Promise((resolve) => setTimeout(resolve, 2_100));
      const before = fetches;
      expect((await clientToken('system/Patient.rs', await signed(second))).status).toBe(200);
      expect(fetches).toBe(before + 1);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
    // Gone: the next unknown key cannot be looked up.
    const third = await clientKey('ES384');
    await new Promise((resolve) => setTimeout(resolve, 2_100));
    expect(
      refusal(
        await clientToken(
          'system/Patient.rs',
          await assertion({ client: clientOfUrl, signer: third }),
        ),
      ),
    ).toBe("401 invalid_client: client_assertion: the client's JWKS URL could not be read");
  });
});
