import { randomUUID } from 'node:crypto';
import { connect } from 'node:net';
import { getDataSourceToken } from '@nestjs/typeorm';
import pg from 'pg';
import { DataSource } from 'typeorm';
import { buildPatient } from '../support/factories.js';
import { tokenFor } from '../support/auth.js';
import { withEnv } from '../support/env.js';
import { authorizedHttp, http as plainHttp, type HttpFn } from '../support/http.js';
import { createTestApp, type TestApp } from '../support/test-app.js';

describe('HTTP hardening', () => {
  let testApp: TestApp;
  let http: HttpFn;
  let restoreEnv: () => void;
  let closedByTest = false;
  const allowed = 'https://portal.example-hospital.org';

  beforeAll(async () => {
    restoreEnv = withEnv({ CORS_ORIGINS: allowed });
    testApp = await createTestApp();
    http = authorizedHttp(await tokenFor(testApp, 'doctor'));
  });

  afterAll(async () => {
    if (!closedByTest) await testApp.close();
    restoreEnv();
  });

  it('sends security headers and no X-Powered-By', async () => {
    const res = await plainHttp('GET', `${testApp.url}/health`);
    expect(res.headers.get('strict-transport-security')).toMatch(/max-age=\d{8}/);
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(res.headers.get('x-frame-options')).toBe('DENY');
    expect(res.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
    expect(res.headers.get('x-powered-by')).toBeNull();
    // Nothing is kept by a cache: tokens (RFC 6749 5.1) and records alike.
    expect(res.headers.get('cache-control')).toBe('no-store');
    const patient = await http('POST', `${testApp.url}/fhir/Patient`, { body: buildPatient() });
    const read = await http('GET', `${testApp.url}/fhir/Patient/${String(patient.body.id)}`);
    expect([read.status, read.headers.get('cache-control')]).toEqual([200, 'no-store']);
    const login = await plainHttp('POST', `${testApp.url}/auth/login`, {
      body: { username: 'nobody', password: 'not a password at all' },
      headers: { 'content-type': 'application/json' },
    });
    expect([login.status, login.headers.get('cache-control')]).toEqual([401, 'no-store']);
  });

  it('answers CORS preflights for configured origins only, with the headers of every answer', async () => {
    const preflight = (origin: string, requestId: string) =>
      plainHttp('OPTIONS', `${testApp.url}/fhir/Patient`, {
        headers: {
          origin,
          'access-control-request-method': 'POST',
          'access-control-request-headers': 'authorization,content-type',
          'x-request-id': requestId,
        },
      });
    const ok = await preflight(allowed, 'c0ffee00-0b0e-4c0d-8e0f-000000000001');
    expect(ok.headers.get('access-control-allow-origin')).toBe(allowed);
    expect(ok.headers.get('access-control-allow-headers')).toContain('authorization');
    const other = await preflight(
      'https://evil.example.com',
      'c0ffee00-0b0e-4c0d-8e0f-000000000002',
    );
    expect(other.headers.get('access-control-allow-origin')).toBeNull();
    // An OPTIONS that is no preflight, on a fixed path, lists what that path takes: not the
    // methods of the routes that would take "metadata" for a type.
    const options = await plainHttp('OPTIONS', `${testApp.url}/fhir/metadata`);
    expect([options.status, options.headers.get('allow')]).toEqual([405, 'GET, HEAD']);
    for (const [res, requestId] of [
      [ok, 'c0ffee00-0b0e-4c0d-8e0f-000000000001'],
      [other, 'c0ffee00-0b0e-4c0d-8e0f-000000000002'],
    ] as const) {
      expect(res.headers.get('x-request-id')).toBe(requestId);
      expect(res.headers.get('strict-transport-security')).toMatch(/max-age=\d{8}/);
      expect(res.headers.get('x-content-type-options')).toBe('nosniff');
      expect(res.headers.get('x-frame-options')).toBe('DENY');
      expect(res.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
    }
  });

  it('lets browsers send and read every header the API documents', async () => {
    const requested = [
      'authorization',
      'content-type',
      'if-match',
      'if-modified-since',
      'if-none-exist',
      'if-none-match',
      'prefer',
      'x-cascade',
      'x-request-id',
      'x-security-context',
    ];
    const preflight = await plainHttp('OPTIONS', `${testApp.url}/fhir/Binary`, {
      headers: {
        origin: allowed,
        'access-control-request-method': 'PUT',
        'access-control-request-headers': requested.join(','),
      },
    });
    expect(preflight.status).toBe(204);
    const allowedHeaders = preflight.headers.get('access-control-allow-headers')!.split(/,\s*/);
    expect(allowedHeaders).toEqual(expect.arrayContaining(requested));
    const read = await http('GET', `${testApp.url}/fhir/metadata`, {
      headers: { origin: allowed },
    });
    const exposed = read.headers.get('access-control-expose-headers')!.split(/,\s*/);
    expect(exposed).toEqual(
      expect.arrayContaining([
        'allow',
        'content-location',
        'etag',
        'location',
        'retry-after',
        'www-authenticate',
        'x-progress',
        'x-request-id',
        'x-security-context',
      ]),
    );
  });

  it('answers an OPTIONS request that is not a preflight like any other refused request, and records it', async () => {
    const db = testApp.app.get<DataSource>(getDataSourceToken());
    // With a token, the 405 and the methods the path takes; without one, the 401 that any other
    // request under /fhir without a token gets.
    for (const [as, status] of [
      [http, 405],
      [plainHttp, 401],
    ] as const) {
      const requestId = randomUUID();
      const res = await as('OPTIONS', `${testApp.url}/fhir/Patient`, {
        headers: { 'x-request-id': requestId },
      });
      expect(res.status).toBe(status);
      if (status === 405) expect(res.headers.get('allow')).toContain('POST');
      expect(res.headers.get('content-type')).toMatch(/^application\/fhir\+json/);
      expect(res.headers.get('x-request-id')).toBe(requestId);
      expect(res.headers.get('x-content-type-options')).toBe('nosniff');
      expect(res.body.resourceType).toBe('OperationOutcome');
      const rows = await db.query(`SELECT status_code FROM audit_event WHERE request_id = $1`, [
        requestId,
      ]);
      expect(rows).toEqual([{ status_code: status }]);
    }
  });

  it('refuses a 50 MB body with 413 before parsing it', async () => {
    const res = await http('POST', `${testApp.url}/fhir/Patient`, {
      raw: `{"resourceType":"Patient","text":"${'x'.repeat(50 * 1024 * 1024)}"}`,
      headers: { 'content-type': 'application/fhir+json' },
    });
    expect(res.status).toBe(413);
    expect(res.body.resourceType).toBe('OperationOutcome');
  });

  it('answers a request line Node cannot parse with an OperationOutcome, echoing nothing', async () => {
    // curl sends `name=Müller` as raw UTF-8, which HTTP does not allow in a URL.
    const { port } = new URL(testApp.url);
    const answer = await new Promise<string>((resolve, reject) => {
      const socket = connect(Number(port), '127.0.0.1', () => {
        socket.write(
          Buffer.from('GET /fhir/Patient?name=Müller HTTP/1.1\r\nHost: localhost\r\n\r\n'),
        );
      });
      let received = '';
      socket.setEncoding('utf8');
      socket.on('data', (chunk: string) => (received += chunk));
      socket.on('close', () => resolve(received));
      socket.on('error', reject);
    });
    const [head, body] = answer.split('\r\n\r\n');
    expect(head).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    expect(head).toContain('Content-Type: application/fhir+json');
    expect(JSON.parse(body!)).toEqual({
      resourceType: 'OperationOutcome',
      issue: [
        expect.objectContaining({
          code: 'structure',
          diagnostics: expect.stringMatching(/percent-encode/),
        }),
      ],
    });
    expect(answer).not.toContain('ller');
  });

  it('refuses a request with two Authorization headers as one without a token', async () => {
    const token = await tokenFor(testApp, 'doctor');
    const { port } = new URL(testApp.url);
    const status = async (...authorizations: string[]): Promise<string> => {
      const answer = await new Promise<string>((resolve, reject) => {
        const socket = connect(Number(port), '127.0.0.1', () => {
          const headers = authorizations.map((value) => `Authorization: ${value}\r\n`).join('');
          socket.write(
            `GET /fhir/Patient?_count=1 HTTP/1.1\r\nHost: localhost\r\n${headers}Connection: close\r\n\r\n`,
          );
        });
        let received = '';
        socket.setEncoding('utf8');
        socket.on('data', (chunk: string) => (received += chunk));
        socket.on('close', () => resolve(received));
        socket.on('error', reject);
      });
      return answer.split('\r\n')[0]!;
    };
    expect(await status(`Bearer ${token}`)).toBe('HTTP/1.1 200 OK');
    // Node keeps the first of two; a proxy in front may have checked the other. Until
    // 2026-12-07 the first was used.
    expect(await status(`Bearer ${token}`, 'Bearer forged')).toBe('HTTP/1.1 401 Unauthorized');
    expect(await status('Bearer forged', `Bearer ${token}`)).toBe('HTTP/1.1 401 Unauthorized');
  });

  /** Sends a request as written (fetch joins repeated headers) and answers its status line. */
  const sendRaw = (
    method: string,
    path: string,
    headers: [string, string][],
    body: string,
  ): Promise<string> =>
    new Promise<string>((resolve, reject) => {
      const { port } = new URL(testApp.url);
      const socket = connect(Number(port), '127.0.0.1', () => {
        const lines = headers.map(([name, value]) => `${name}: ${value}\r\n`).join('');
        socket.write(
          `${method} ${path} HTTP/1.1\r\nHost: localhost\r\n${lines}` +
            `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
        );
      });
      let received = '';
      socket.setEncoding('utf8');
      socket.on('data', (chunk: string) => (received += chunk));
      socket.on('close', () => resolve(received.split('\r\n')[0]!));
      socket.on('error', reject);
    });

  it('refuses a body with two Content-Type headers rather than reading it as the first says', async () => {
    // Node keeps the first of two; a proxy in front may have judged the body by the other. A
    // Binary labelled PDF then FHIR JSON was stored as a PDF of the JSON text until 2026-12-07.
    const authorization: [string, string] = [
      'Authorization',
      `Bearer ${await tokenFor(testApp, 'doctor')}`,
    ];
    const id = randomUUID();
    const body = JSON.stringify({ resourceType: 'Binary', id, contentType: 'text/plain' });
    const put = (...types: string[]) =>
      sendRaw(
        'PUT',
        `/fhir/Binary/${id}`,
        [authorization, ...types.map((type): [string, string] => ['Content-Type', type])],
        body,
      );
    for (const types of [
      ['application/pdf', 'application/fhir+json'],
      ['application/fhir+json', 'application/pdf'],
      ['application/fhir+json', 'application/fhir+json'],
    ]) {
      expect([types, await put(...types)]).toEqual([types, 'HTTP/1.1 400 Bad Request']);
    }
    expect((await http('GET', `${testApp.url}/fhir/Binary/${id}`)).status).toBe(404);
    expect(await put('application/fhir+json')).toBe('HTTP/1.1 201 Created');
  });

  it('refuses two If-None-Exist headers, which Node joined into criteria matching either', async () => {
    const system = 'urn:oid:1.2.36.146.595.217.0.1';
    const stored = `INE-${randomUUID()}`;
    const sent = `INE-${randomUUID()}`;
    await http('POST', `${testApp.url}/fhir/Patient`, { body: buildPatient({ mrn: stored }) });
    const headers: [string, string][] = [
      ['Authorization', `Bearer ${await tokenFor(testApp, 'doctor')}`],
      ['Content-Type', 'application/fhir+json'],
      ['If-None-Exist', `identifier=${system}|${stored}`],
      ['If-None-Exist', `identifier=${system}|${sent}`],
    ];
    // Joined, the criteria found the stored Patient: a 200 with it, the one sent not created.
    const answer = await sendRaw(
      'POST',
      '/fhir/Patient',
      headers,
      JSON.stringify(buildPatient({ mrn: sent })),
    );
    expect(answer).toBe('HTTP/1.1 400 Bad Request');
    const found = await http(
      'GET',
      `${testApp.url}/fhir/Patient?identifier=${system}|${sent}&_summary=count`,
    );
    expect(found.body.total).toBe(0);
  });

  it.each([
    ['/fhir/Patient/John%20Smith%20123-45-6789%FF?name=Jane%20Doe', 400, 'structure'],
    ['/auth/login/Smith%E0%A4%A', 400, 'structure'],
    [`/fhir/Patient/Smith${'x'.repeat(120)}`, 414, 'too-long'],
  ])(
    'answers a URL the router refuses (%s) with an OperationOutcome, echoing nothing',
    async (path, status, code) => {
      const res = await http('GET', `${testApp.url}${path}`, {
        headers: { 'x-request-id': 'c0ffee00-0b0e-4c0d-8e0f-000000000004' },
      });
      expect(res.status).toBe(status);
      expect(res.headers.get('content-type')).toMatch(/^application\/fhir\+json/);
      expect(res.headers.get('x-request-id')).toBe('c0ffee00-0b0e-4c0d-8e0f-000000000004');
      expect(res.headers.get('x-content-type-options')).toBe('nosniff');
      expect(res.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
      expect(res.body).toEqual({
        resourceType: 'OperationOutcome',
        issue: [expect.objectContaining({ code })],
      });
      expect(res.text).not.toMatch(/Smith|Jane|FST_ERR/);
    },
  );

  it('refuses deeply nested JSON with 400, on FHIR and plain JSON routes', async () => {
    const deep = `${'['.repeat(5000)}${']'.repeat(5000)}`;
    for (const [path, type] of [
      ['/fhir/Patient', 'application/fhir+json'],
      ['/auth/login', 'application/json'],
    ] as const) {
      const res = await http('POST', `${testApp.url}${path}`, {
        raw: `{"resourceType":"Patient","extension":${deep}}`,
        headers: { 'content-type': type },
      });
      expect(res.status).toBe(400);
      expect(res.body.issue[0].diagnostics).toMatch(/nesting deeper than 64/);
    }
    // Ordinary nesting, brackets inside strings included, is fine.
    const patient = {
      ...buildPatient(),
      name: [{ family: '[[[[{{{{'.repeat(20), given: ['"]]'] }],
    };
    expect((await http('POST', `${testApp.url}/fhir/Patient`, { body: patient })).status).toBe(201);
  });

  it.each([
    ['__proto__', '{"resourceType":"Patient","__proto__":{"isAdmin":true}}'],
    ['constructor.prototype', '{"resourceType":"Patient","constructor":{"prototype":{"x":1}}}'],
  ])('refuses %s keys (prototype poisoning) with 400', async (_name, raw) => {
    for (const type of ['application/fhir+json', 'application/json']) {
      const res = await http('POST', `${testApp.url}/fhir/Patient`, {
        raw,
        headers: { 'content-type': type },
      });
      expect(res.status).toBe(400);
      expect(res.body.issue[0].code).toBe('security');
    }
  });

  it('refuses every key named like a property of every object, at any depth and however it comes', async () => {
    const refused = (res: { status: number; body: any }, expression?: string) => {
      expect(res.status).toBe(400);
      expect(res.body.issue[0]).toMatchObject({
        code: 'security',
        ...(expression ? { expression: [expression] } : {}),
      });
    };
    const post = (path: string, body: unknown, type = 'application/fhir+json') =>
      http('POST', `${testApp.url}${path}`, {
        raw: JSON.stringify(body),
        headers: { 'content-type': type },
      });
    // Each of these was stored (201): @medplum/core's validator looks names up on plain objects.
    for (const name of Object.getOwnPropertyNames(Object.prototype)) {
      const body = JSON.parse(`{"resourceType":"Patient","${name}":{"a":"b"}}`);
      refused(await post('/fhir/Patient', body), `Patient.${name}`);
    }
    refused(
      await post('/fhir/Patient', { resourceType: 'Patient', name: [{ valueOf: 'x' }] }),
      'Patient.name[0].valueOf',
    );
    refused(
      await post('/fhir/Patient', { resourceType: 'Patient', meta: { toString: 'x' } }),
      'Patient.meta.toString',
    );
    refused(
      await post('/fhir/Observation', {
        resourceType: 'Observation',
        status: 'final',
        code: { text: 'x' },
        valueQuantity: { value: 1, hasOwnProperty: 'x' },
      }),
      'Observation.valueQuantity.hasOwnProperty',
    );
    refused(
      await post('/fhir', {
        resourceType: 'Bundle',
        type: 'transaction',
        entry: [
          {
            resource: { resourceType: 'Patient', isPrototypeOf: 1 },
            request: { method: 'POST', url: 'Patient' },
          },
        ],
      }),
      'Bundle.entry[0].resource.isPrototypeOf',
    );
    // Plain JSON routes too.
    refused(
      await post(
        '/auth/login',
        { username: 'a', password: 'b', toString: 'x' },
        'application/json',
      ),
    );

    const created = await post('/fhir/Patient', buildPatient());
    expect(created.status).toBe(201);
    const patient = `${testApp.url}/fhir/Patient/${created.body.id as string}`;
    for (const operations of [
      [{ op: 'add', path: '/constructor', value: { a: 'b' } }],
      [{ op: 'move', from: '/gender', path: '/hasOwnProperty' }],
      [{ op: 'copy', from: '/gender', path: '/name/0/toLocaleString' }],
      [{ op: 'add', path: '/__proto__/polluted', value: true }],
    ]) {
      const res = await http('PATCH', patient, {
        raw: JSON.stringify(operations),
        headers: { 'content-type': 'application/json-patch+json' },
      });
      refused(res);
      expect(res.body.issue[0].diagnostics).toMatch(/^JSON Patch operation 0: keys named like/);
    }
    const fhirPathAdd = (name: string) => ({
      resourceType: 'Parameters',
      parameter: [
        {
          name: 'operation',
          part: [
            { name: 'type', valueCode: 'add' },
            { name: 'path', valueString: 'Patient' },
            { name: 'name', valueString: name },
            { name: 'value', valueString: 'x' },
          ],
        },
      ],
    });
    for (const name of ['constructor', '__proto__', 'valueOf']) {
      refused(
        await http('PATCH', patient, {
          raw: JSON.stringify(fhirPathAdd(name)),
          headers: { 'content-type': 'application/fhir+json' },
        }),
      );
    }
    // A JSON Patch in a Bundle (a Binary) is checked the same way.
    const batch = await post('/fhir', {
      resourceType: 'Bundle',
      type: 'batch',
      entry: [
        {
          resource: {
            resourceType: 'Binary',
            contentType: 'application/json-patch+json',
            data: Buffer.from(
              JSON.stringify([{ op: 'add', path: '/toString', value: 'x' }]),
            ).toString('base64'),
          },
          request: { method: 'PATCH', url: `Patient/${created.body.id as string}` },
        },
      ],
    });
    expect(batch.body.entry[0].response.status).toBe('400');
    expect(batch.body.entry[0].response.outcome.issue[0].code).toBe('security');
    const read = await http('GET', patient);
    expect(read.body.meta.versionId).toBe('1');
    expect(Object.keys(read.body as object).filter((key) => key in Object.prototype)).toEqual([]);
  });

  it('refuses text it cannot read as UTF-8 rather than storing U+FFFD in its place', async () => {
    const patient = (family: string) =>
      `{"resourceType":"Patient","name":[{"family":"${family}"}]}`;
    const post = (raw: string | Uint8Array, type = 'application/fhir+json') =>
      http('POST', `${testApp.url}/fhir/Patient`, { raw, headers: { 'content-type': type } });
    const outcome = (res: { status: number; body: any }, status: number, code: string) => {
      expect(res.status).toBe(status);
      expect(res.body.resourceType).toBe('OperationOutcome');
      expect(res.body.issue[0].code).toBe(code);
      expect(JSON.stringify(res.body)).not.toContain('ller');
    };
    // Each of these was a 201, stored as M\uFFFDller (or with the surrogate indexed as U+FFFD).
    const latin1 = Buffer.from(patient('Müller'), 'latin1');
    outcome(await post(latin1, 'application/fhir+json; charset=iso-8859-1'), 415, 'not-supported');
    outcome(await post(latin1), 400, 'structure');
    outcome(await post(Buffer.from(patient('\xff\xfeller'), 'latin1')), 400, 'structure');
    outcome(await post(patient('M\\ud800ller')), 400, 'structure');
    expect((await post(patient('M\\ud800ller'))).body.issue[0].expression).toEqual([
      'Patient.name[0].family',
    ]);
    outcome(
      await post(
        Buffer.from('family=M%FCller'),
        'application/x-www-form-urlencoded; charset=iso-8859-1',
      ),
      415,
      'not-supported',
    );
    // UTF-8, labelled or not, a surrogate pair escaped, and a byte order mark, are read as sent.
    for (const [raw, type] of [
      [Buffer.from(patient('Müller'), 'utf8'), 'application/fhir+json'],
      [Buffer.from(patient('Müller'), 'utf8'), 'application/fhir+json; charset="UTF-8"'],
      [Buffer.from(`\ufeff${patient('Müller')}`, 'utf8'), 'application/json; charset=utf-8'],
    ] as const) {
      const res = await post(raw, type);
      expect(res.status).toBe(201);
      expect(res.body.name[0].family).toBe('Müller');
    }
    const pair = await post(patient('M\\ud83d\\ude00ller'));
    expect(pair.status).toBe(201);
    expect(pair.body.name[0].family).toBe('M😀ller');
    // A JSON Patch carried in a Bundle (base64 in a Binary) is read by the same rules.
    const jsonPatch = Buffer.concat([
      Buffer.from('[{"op":"replace","path":"/name/0/family","value":"M'),
      Buffer.from([0xfc]),
      Buffer.from('ller"}]'),
    ]);
    const batch = await http('POST', `${testApp.url}/fhir`, {
      body: {
        resourceType: 'Bundle',
        type: 'batch',
        entry: [
          {
            resource: { resourceType: 'Binary', data: jsonPatch.toString('base64') },
            request: { method: 'PATCH', url: `Patient/${pair.body.id as string}` },
          },
        ],
      },
    });
    expect(batch.body.entry[0].response.status).toBe('400');
    expect(
      (await http('GET', `${testApp.url}/fhir/Patient/${pair.body.id as string}`)).body.name,
    ).toEqual([{ family: 'M😀ller' }]);
  });

  it('refuses a NUL character in JSON text with 400 rather than failing in the database', async () => {
    const tagged = await http('POST', `${testApp.url}/fhir/Patient`, {
      raw: '{"resourceType":"Patient","meta":{"tag":[{"system":"urn:x","code":"nul-tag\\u0000"}]}}',
      headers: { 'content-type': 'application/fhir+json' },
    });
    expect(tagged.status).toBe(400);
    expect(tagged.body.issue[0]).toMatchObject({
      code: 'structure',
      expression: ['Patient.meta.tag[0].code'],
    });
    const stored = await http('POST', `${testApp.url}/fhir/Patient`, { body: buildPatient() });
    const patched = await http('PATCH', `${testApp.url}/fhir/Patient/${stored.body.id as string}`, {
      raw: '[{"op":"add","path":"/meta/tag","value":[{"code":"a\\u0000"}]}]',
      headers: { 'content-type': 'application/json-patch+json' },
    });
    expect(patched.status).toBe(400);
    expect(patched.body.issue[0].code).toBe('structure');
    const login = await plainHttp('POST', `${testApp.url}/auth/login`, {
      raw: '{"username":"dr.lee\\u0000","password":"a long passphrase"}',
      headers: { 'content-type': 'application/json' },
    });
    expect(login.status).toBe(400);
    expect(login.body.issue[0]).toMatchObject({ code: 'structure', expression: ['username'] });
  });

  it('refuses conditional criteria holding a NUL with 400, on every conditional interaction', async () => {
    // The criteria's lock was taken with the NUL as text before the search could refuse it: 500.
    const patient = '{"resourceType":"Patient"}';
    const answers = [
      await http('POST', `${testApp.url}/fhir/Patient`, {
        raw: patient,
        headers: { 'content-type': 'application/fhir+json', 'if-none-exist': 'identifier=a%00' },
      }),
      await http('PUT', `${testApp.url}/fhir/Patient?identifier=a%00`, {
        raw: patient,
        headers: { 'content-type': 'application/fhir+json' },
      }),
      await http('PATCH', `${testApp.url}/fhir/Patient?identifier=a%00`, {
        raw: '[]',
        headers: { 'content-type': 'application/json-patch+json' },
      }),
      await http('DELETE', `${testApp.url}/fhir/Patient?identifier=a%00`),
    ];
    for (const answer of answers) {
      expect(answer.status).toBe(400);
      expect(answer.body.issue[0].diagnostics).toContain('NUL');
    }
  });

  it('reads _since as an instant or a date, refusing what a JavaScript Date would guess at', async () => {
    const history = (since: string) =>
      http('GET', `${testApp.url}/fhir/Patient/_history?_count=1&_since=${since}`);
    // Each was a 200 for another instant: 2001, 2020 (the NUL dropped), March 1st, local time.
    for (const since of ['1', '2020%00', '2020-02-30', '2020-01-01%2010:00', '2020-01-01T10:00']) {
      const answer = await history(since);
      expect(answer.status).toBe(400);
      expect(answer.body.issue[0].diagnostics).toContain('_since must be an instant');
    }
    for (const since of ['2020', '2020-02', '2020-02-29', '2020-02-29T10:00:00.5%2B01:00']) {
      expect((await history(since)).status).toBe(200);
    }
    const everything = await http(
      'GET',
      `${testApp.url}/fhir/Patient/${(await http('POST', `${testApp.url}/fhir/Patient`, { body: buildPatient() })).body.id as string}/$everything?_since=1`,
    );
    expect(everything.status).toBe(400);
  });

  it('refuses a key given twice in one object rather than storing the last', async () => {
    // Each was taken, the last value winning: a 201 with gender female, a login as dr.lee.
    const twice = await http('POST', `${testApp.url}/fhir/Patient`, {
      raw: '{"resourceType":"Patient","gender":"male","gender":"female"}',
      headers: { 'content-type': 'application/fhir+json' },
    });
    expect(twice.status).toBe(400);
    expect(twice.body.issue[0]).toMatchObject({
      code: 'structure',
      expression: ['Patient.gender'],
    });
    const login = await plainHttp('POST', `${testApp.url}/auth/login`, {
      raw: '{"username":"nobody","password":"a long passphrase","username":"dr.lee"}',
      headers: { 'content-type': 'application/json' },
    });
    expect(login.status).toBe(400);
    expect(login.body.issue[0]).toMatchObject({ code: 'structure', expression: ['username'] });
  });

  it('refuses a query or form whose percent-encoding is not UTF-8, rather than searching its text', async () => {
    const invalid = (res: { status: number; body: any }) => {
      expect(res.status).toBe(400);
      expect(res.body.issue[0].diagnostics).toMatch(/not well percent-encoded/);
      expect(JSON.stringify(res.body)).not.toContain('ller');
    };
    // Searched for the text `%FC` (a 200 with no match), or for U+FFFD.
    for (const query of ['family=M%FCller', 'family=M%C3ller', 'family=50%', 'family=%zz']) {
      invalid(await http('GET', `${testApp.url}/fhir/Patient?${query}`));
      invalid(
        await http('POST', `${testApp.url}/fhir/Patient/_search`, {
          raw: query,
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
        }),
      );
      invalid(
        await http('POST', `${testApp.url}/fhir/Patient`, {
          body: buildPatient(),
          headers: { 'if-none-exist': query },
        }),
      );
    }
    for (const query of ['family=M%C3%BCller', 'family=50%25']) {
      expect((await http('GET', `${testApp.url}/fhir/Patient?${query}`)).status).toBe(200);
    }
  });

  it('refuses a FHIR number that a double cannot hold as written, rather than storing another', async () => {
    const observation = (value: string) =>
      '{"resourceType":"Observation","status":"final","code":{"text":"glucose"},' +
      `"valueQuantity":{"value":${value},"unit":"mg/dL"}}`;
    const post = (raw: string, path = '/fhir/Observation') =>
      http('POST', `${testApp.url}${path}`, {
        raw,
        headers: { 'content-type': 'application/fhir+json' },
      });
    // Each was a 201 storing 9007199254740992, 0.1, 0, 1.2345678901234568e+29.
    for (const value of [
      '9007199254740993',
      '0.1000000000000000055511151231257827',
      '1e-400',
      '123456789012345678901234567890',
      '1e400',
    ]) {
      const res = await post(observation(value));
      expect(res.status).toBe(400);
      expect(res.body.issue[0]).toMatchObject({
        code: 'value',
        expression: ['Observation.valueQuantity.value'],
      });
      expect(res.text).not.toContain(value);
      const bundle = await post(
        `{"resourceType":"Bundle","type":"transaction","entry":[{"resource":${observation(value)},` +
          '"request":{"method":"POST","url":"Observation"}}]}',
        '/fhir',
      );
      expect(bundle.status).toBe(400);
      expect(bundle.body.issue[0].expression).toEqual([
        'Bundle.entry[0].resource.valueQuantity.value',
      ]);
    }
    // Trailing zeros keep the value, not the written precision (README, "Decimals").
    const created = await post(observation('1.10'));
    expect(created.status).toBe(201);
    expect(created.body.valueQuantity.value).toBe(1.1);
    const patched = await http(
      'PATCH',
      `${testApp.url}/fhir/Observation/${created.body.id as string}`,
      {
        raw: '[{"op":"replace","path":"/valueQuantity/value","value":9007199254740993}]',
        headers: { 'content-type': 'application/json-patch+json' },
      },
    );
    expect(patched.status).toBe(400);
    expect(patched.body.issue[0].code).toBe('value');
  });

  it('does not let a client choose the id or version of a created resource', async () => {
    const res = await http('POST', `${testApp.url}/fhir/Patient`, {
      body: {
        ...buildPatient(),
        id: 'chosen-by-client',
        meta: { versionId: '99', lastUpdated: '2001-01-01T00:00:00Z' },
      },
    });
    expect(res.status).toBe(201);
    expect(res.body.id).not.toBe('chosen-by-client');
    expect(res.body.meta.versionId).toBe('1');
    expect(res.body.meta.lastUpdated).not.toBe('2001-01-01T00:00:00Z');
    const read = await http('GET', `${testApp.url}/fhir/Patient/chosen-by-client`);
    expect(read.status).toBe(404);
  });

  // Last, as it closes the application the tests above share: a shutdown does not depend on how
  // the application was configured, and each start of it costs seconds of CPU.
  describe('HTTP during shutdown', () => {
    it('answers a request that arrives while the server closes with a 503 OperationOutcome', async () => {
      const port = Number(new URL(testApp.url).port);
      const socket = connect(port, '127.0.0.1');
      socket.setEncoding('utf8');
      let received = '';
      socket.on('data', (chunk: string) => (received += chunk));
      const socketClosed = new Promise((resolve) => socket.once('close', resolve));
      // A request in flight, its body not all sent, keeps the server closing rather than closed;
      // Node's 100 Continue says it has the request.
      socket.write(
        'POST /fhir/Patient HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/fhir+json\r\n' +
          'Content-Length: 2\r\nExpect: 100-continue\r\n\r\n',
      );
      while (!received.includes('100 Continue')) {
        await new Promise((resolve) => socket.once('data', resolve));
      }
      const closing = testApp.close();
      closedByTest = true;
      await refusesConnections(port);
      // The rest of the body, and a request behind it on the same connection.
      socket.write(
        '{}GET /health HTTP/1.1\r\nHost: localhost\r\nX-Request-Id: c0ffee00-0b0e-4c0d-8e0f-000000000005\r\n\r\n',
      );
      await socketClosed;
      await closing;
      const answer = received.slice(received.indexOf('HTTP/1.1 503 '));
      const [head, body] = answer.split('\r\n\r\n');
      const headers = head!.toLowerCase();
      expect(headers).toMatch(/^http\/1\.1 503 /);
      expect(headers).toContain('\r\ncontent-type: application/fhir+json');
      expect(headers).toContain('\r\nx-request-id: c0ffee00-0b0e-4c0d-8e0f-000000000005');
      expect(headers).toContain('\r\nx-content-type-options: nosniff');
      expect(headers).toContain('\r\nretry-after: 5');
      expect(headers).toContain('\r\nconnection: close');
      expect(JSON.parse(body!)).toMatchObject({
        resourceType: 'OperationOutcome',
        issue: [
          {
            severity: 'error',
            code: 'transient',
            diagnostics: expect.stringContaining('shutting down'),
          },
        ],
      });
      // Recorded as any refused request: the pool closes after the HTTP server.
      const db = new pg.Client({ connectionString: process.env['DATABASE_URL'] });
      await db.connect();
      try {
        const { rows } = await db.query(
          'SELECT status_code FROM audit_event WHERE request_id = $1',
          ['c0ffee00-0b0e-4c0d-8e0f-000000000005'],
        );
        expect(rows).toEqual([{ status_code: 503 }]);
      } finally {
        await db.end();
      }
    });
  });
});

/** Resolves once the server at `port` no longer accepts connections (it has begun to close). */
async function refusesConnections(port: number): Promise<void> {
  for (;;) {
    const refused = await new Promise<boolean>((resolve) => {
      const probe = connect(port, '127.0.0.1');
      probe.once('connect', () => {
        probe.destroy();
        resolve(false);
      });
      probe.once('error', () => resolve(true));
    });
    if (refused) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
