import { request } from 'node:http';
import { buildPatient } from '../support/factories.js';
import { tokenFor } from '../support/auth.js';
import { authorizedHttp, createResource, type HttpFn } from '../support/http.js';
import { createTestApp, type TestApp } from '../support/test-app.js';

/** A request sent with its path as written: fetch resolves `.` and `..` segments first. */
function rawRequest(
  url: string,
  method: string,
  path: string,
  token: string,
  body?: unknown,
): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const { hostname, port } = new URL(url);
    const req = request(
      {
        hostname,
        port,
        method,
        path,
        headers: {
          authorization: `Bearer ${token}`,
          ...(body ? { 'content-type': 'application/fhir+json' } : {}),
        },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, body: text ? JSON.parse(text) : undefined }),
        );
      },
    );
    req.on('error', reject);
    req.end(body ? JSON.stringify(body) : undefined);
  });
}

describe('which resource a write names', () => {
  let testApp: TestApp;
  let fhir: string;
  let token: string;
  let http: HttpFn;

  beforeAll(async () => {
    testApp = await createTestApp();
    fhir = `${testApp.url}/fhir`;
    token = await tokenFor(testApp, 'doctor');
    http = authorizedHttp(token);
  });

  afterAll(async () => {
    await testApp.close();
  });

  it('refuses the ids . and .., which every URL resolves away, on a PUT and in a Bundle', async () => {
    // FHIR's id pattern takes them, but `Patient/..` is no path to the resource: a client's URL
    // (and the Location answered, `Patient/../_history/1`) resolves to `/fhir/_history/1`.
    for (const id of ['.', '..']) {
      const put = await rawRequest(testApp.url, 'PUT', `/fhir/Patient/${id}`, token, {
        ...buildPatient(),
        id,
      });
      expect([id, put.status, put.body?.issue?.[0]?.expression]).toEqual([id, 400, ['Patient.id']]);
      const read = await rawRequest(testApp.url, 'GET', `/fhir/Patient/${id}`, token);
      expect([id, read.status]).toEqual([id, 404]);
      for (const type of ['transaction', 'batch']) {
        const res = await http('POST', fhir, {
          body: {
            resourceType: 'Bundle',
            type,
            entry: [
              {
                resource: { ...buildPatient(), id },
                request: { method: 'PUT', url: `Patient/${id}` },
              },
            ],
          },
        });
        const outcome = type === 'batch' ? res.body.entry?.[0]?.response?.outcome : res.body;
        expect([id, type, outcome?.issue?.[0]?.diagnostics]).toEqual([
          id,
          type,
          expect.stringContaining('Patient.id'),
        ]);
      }
    }
    // Ids that hold dots among other characters are ids like any other.
    for (const id of ['...', 'a..b', '.a']) {
      const put = await rawRequest(testApp.url, 'PUT', `/fhir/Patient/${id}`, token, {
        ...buildPatient(),
        id,
      });
      expect([id, put.status]).toEqual([id, 201]);
    }
  });

  it('matches If-Match against the version as written: W/"02" is not version 2', async () => {
    // RFC 9110 §8.8.3.2 compares entity-tags character by character; the server writes W/"2".
    const id = await createResource(http, fhir, buildPatient());
    const body = { ...buildPatient(), id, active: false };
    const second = await http('PUT', `${fhir}/Patient/${id}`, { body });
    expect(second.headers.get('etag')).toBe('W/"2"');
    for (const header of ['W/"02"', '"002"', '02']) {
      const res = await http('PUT', `${fhir}/Patient/${id}`, {
        body: { ...body, gender: 'male' },
        headers: { 'if-match': header },
      });
      expect([header, res.status]).toEqual([header, 412]);
    }
    const read = await http('GET', `${fhir}/Patient/${id}`);
    expect([read.body.meta.versionId, read.body.gender]).toEqual(['2', 'female']);
  });
});
