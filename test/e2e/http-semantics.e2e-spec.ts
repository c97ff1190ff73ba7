import { randomUUID } from 'node:crypto';
import { request, type IncomingHttpHeaders } from 'node:http';
import { brotliDecompressSync, gunzipSync } from 'node:zlib';
import { getDataSourceToken } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import { createUser, enableMfa, loginWithMfa, tokenFor } from '../support/auth.js';
import { withEnv } from '../support/env.js';
import { buildPatient } from '../support/factories.js';
import { authorizedHttp, type HttpFn } from '../support/http.js';
import { createTestApp, type TestApp } from '../support/test-app.js';

/** An answer as the bytes that came over the wire (fetch would decode them out of sight). */
interface WireResult {
  status: number;
  headers: IncomingHttpHeaders;
  bytes: Buffer;
}

/**
 * HTTP as a FHIR client library or a browser app behind a cache sees it: content codings,
 * conditional reads, Prefer, CORS.
 */
describe('HTTP semantics for FHIR clients', () => {
  let testApp: TestApp;
  let http: HttpFn;
  let token: string;
  let fhir: string;
  let restoreEnv: () => void;
  const origin = 'https://chart.example-hospital.org';
  const family = `Wire-${randomUUID().slice(0, 8)}`;

  function wire(
    method: string,
    path: string,
    headers: Record<string, string> = {},
  ): Promise<WireResult> {
    return anonymous(method, path, { authorization: `Bearer ${token}`, ...headers });
  }

  /** A request with no token, unless its headers carry one. */
  function anonymous(
    method: string,
    path: string,
    headers: Record<string, string> = {},
    body?: string,
  ): Promise<WireResult> {
    return new Promise((resolve, reject) => {
      const req = request(`${testApp.url}${path}`, { method, headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () =>
          resolve({
            status: res.statusCode!,
            headers: res.headers,
            bytes: Buffer.concat(chunks),
          }),
        );
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(body);
    });
  }

  const varies = (headers: IncomingHttpHeaders): string[] =>
    String(headers['vary'] ?? '')
      .split(',')
      .map((name) => name.trim().toLowerCase());

  beforeAll(async () => {
    restoreEnv = withEnv({ CORS_ORIGINS: origin });
    testApp = await createTestApp();
    token = await tokenFor(testApp, 'doctor');
    http = authorizedHttp(token);
    fhir = `${testApp.url}/fhir`;
  });

  afterAll(async () => {
    await testApp.close();
    restoreEnv();
  });

  describe('response compression', () => {
    it('gzips or brotli-encodes a large FHIR answer when the client asks, and says it varies', async () => {
      const plain = await wire('GET', '/fhir/metadata');
      expect(plain.status).toBe(200);
      expect(plain.headers['content-encoding']).toBeUndefined();
      expect(varies(plain.headers)).toContain('accept-encoding');
      // Each answer is dated when it is made.
      const undated = (bytes: Buffer) => ({ ...JSON.parse(bytes.toString('utf8')), date: 0 });
      const statement = undated(plain.bytes);
      expect(statement.resourceType).toBe('CapabilityStatement');

      const gzipped = await wire('GET', '/fhir/metadata', { 'accept-encoding': 'gzip, deflate' });
      expect(gzipped.status).toBe(200);
      expect(gzipped.headers['content-encoding']).toBe('gzip');
      expect(gzipped.headers['content-type']).toBe('application/fhir+json; charset=utf-8');
      expect(varies(gzipped.headers)).toContain('accept-encoding');
      expect(Number(gzipped.headers['content-length'])).toBe(gzipped.bytes.length);
      // The CapabilityStatement is most of a megabyte of repetitive JSON.
      expect(gzipped.bytes.length).toBeLessThan(plain.bytes.length / 5);
      expect(undated(gunzipSync(gzipped.bytes))).toEqual(statement);

      const brotli = await wire('GET', '/fhir/metadata', { 'accept-encoding': 'gzip;q=0.5, br' });
      expect(brotli.headers['content-encoding']).toBe('br');
      expect(undated(brotliDecompressSync(brotli.bytes))).toEqual(statement);

      // Refused codings and those it does not produce leave the answer as it is.
      for (const acceptEncoding of ['gzip;q=0, identity', 'compress', 'identity', '*;q=0']) {
        const res = await wire('GET', '/fhir/metadata', { 'accept-encoding': acceptEncoding });
        expect([acceptEncoding, res.headers['content-encoding']]).toEqual([
          acceptEncoding,
          undefined,
        ]);
        expect(res.bytes.length).toBe(plain.bytes.length);
      }
      // `*` stands for the codings not named.
      const any = await wire('GET', '/fhir/metadata', { 'accept-encoding': '*' });
      expect(['gzip', 'br']).toContain(any.headers['content-encoding']);
    });

    it('compresses a search Bundle, keeps small answers as they are, and answers HEAD alike', async () => {
      for (let n = 0; n < 12; n++) {
        const created = await http('POST', `${fhir}/Patient`, {
          body: buildPatient({ family, given: `Given${n}` }),
        });
        expect(created.status).toBe(201);
      }
      const search = `/fhir/Patient?family=${family}&_count=50`;
      const res = await wire('GET', search, { 'accept-encoding': 'gzip' });
      expect(res.status).toBe(200);
      expect(res.headers['content-encoding']).toBe('gzip');
      const bundle = JSON.parse(gunzipSync(res.bytes).toString('utf8'));
      expect(bundle.entry).toHaveLength(12);

      const head = await wire('HEAD', search, { 'accept-encoding': 'gzip' });
      expect(head.status).toBe(200);
      expect(head.headers['content-encoding']).toBe('gzip');
      expect(head.bytes.length).toBe(0);

      // A read of a small Patient is smaller than what compressing it would save.
      const id = String(bundle.entry[0].resource.id);
      const read = await wire('GET', `/fhir/Patient/${id}`, { 'accept-encoding': 'gzip' });
      expect(read.status).toBe(200);
      expect(read.headers['content-encoding']).toBeUndefined();
      expect(varies(read.headers)).toContain('accept-encoding');
      expect(JSON.parse(read.bytes.toString('utf8')).id).toBe(id);

      // A 304 has no body to encode, and an error's OperationOutcome is JSON like any answer.
      const notModified = await wire('GET', `/fhir/Patient/${id}`, {
        'accept-encoding': 'gzip',
        'if-none-match': read.headers['etag']!,
      });
      expect(notModified.status).toBe(304);
      expect(notModified.headers['content-encoding']).toBeUndefined();
      // A 304 names what the 200 would have varied by (RFC 9110 section 15.4.5).
      expect(varies(notModified.headers)).toContain('accept-encoding');
      expect(notModified.bytes.length).toBe(0);

      // And the fetch API, which asks for gzip itself, reads the answer as if nothing happened.
      const fetched = await http('GET', `${testApp.url}${search}`);
      expect(fetched.body.entry).toHaveLength(12);
    });

    it('compresses a Bulk Data file as it streams', async () => {
      const exporter = await createUser(testApp, ['doctor']);
      const secret = await enableMfa(testApp, exporter);
      const exportToken = (await loginWithMfa(testApp, exporter, secret)).access_token;
      const exportHttp = authorizedHttp(exportToken);
      const patient = await exportHttp('POST', `${fhir}/Patient`, {
        body: buildPatient({ family, given: 'Exported' }),
      });
      const group = await exportHttp('POST', `${fhir}/Group`, {
        body: {
          resourceType: 'Group',
          type: 'person',
          actual: true,
          member: [{ entity: { reference: `Patient/${String(patient.body.id)}` } }],
        },
      });
      const kickOff = await exportHttp(
        'GET',
        `${fhir}/Group/${String(group.body.id)}/$export?_type=Patient`,
        { headers: { prefer: 'respond-async', accept: 'application/fhir+json' } },
      );
      expect(kickOff.status).toBe(202);
      const status = kickOff.headers.get('content-location')!;
      let manifest: { output: { type: string; url: string }[] } | undefined;
      for (let attempt = 0; attempt < 200 && !manifest; attempt++) {
        const polled = await exportHttp('GET', status);
        if (polled.status === 200) manifest = polled.body;
        else await new Promise((resolve) => setTimeout(resolve, 50));
      }
      const file = manifest!.output.find((output) => output.type === 'Patient')!;
      const res = await wire('GET', new URL(file.url).pathname, {
        authorization: `Bearer ${exportToken}`,
        'accept-encoding': 'gzip',
      });
      expect(res.status).toBe(200);
      expect(res.headers['content-type']).toBe('application/fhir+ndjson');
      expect(res.headers['content-encoding']).toBe('gzip');
      const lines = gunzipSync(res.bytes).toString('utf8').trim().split('\n');
      expect(lines.map((line) => JSON.parse(line).id)).toEqual([patient.body.id]);
    });
  });

  describe('Vary', () => {
    it('names Accept where the answer depends on it, with Accept-Encoding and Origin, each once', async () => {
      const created = await http('POST', `${fhir}/Patient`, { body: buildPatient({ family }) });
      const read = `/fhir/Patient/${String(created.body.id)}`;
      const once = (headers: IncomingHttpHeaders) => {
        const names = varies(headers);
        expect(names).toEqual([...new Set(names)]);
        return names.sort();
      };
      const all = ['accept', 'accept-encoding', 'origin'];
      const plain = await wire('GET', read, { origin });
      expect(once(plain.headers)).toEqual(all);
      // What a shared cache keeps of a 200 must not answer an Accept that gets a 406, nor one
      // that gets application/json; a 304 names what its 200 varied by (RFC 9110 15.4.5).
      const notModified = await wire('GET', read, { 'if-none-match': plain.headers['etag']! });
      expect(notModified.status).toBe(304);
      expect(once(notModified.headers)).toEqual(all);
      const refused = await wire('GET', read, { accept: 'application/fhir+xml' });
      expect(refused.status).toBe(406);
      expect(once(refused.headers)).toEqual(all);
      const encoded = await wire('GET', '/fhir/metadata', { 'accept-encoding': 'gzip' });
      expect(encoded.headers['content-encoding']).toBe('gzip');
      expect(once(encoded.headers)).toEqual(all);
      // _format chooses the answer, which the URL already keys.
      const format = await wire('GET', `${read}?_format=json`, { accept: 'application/json' });
      expect(once(format.headers)).toEqual(['accept-encoding', 'origin']);
      // A preflight's answer depends on Origin alone.
      const preflight = await wire('OPTIONS', read, {
        origin,
        'access-control-request-method': 'GET',
      });
      expect(preflight.status).toBe(204);
      expect(once(preflight.headers)).toEqual(['origin']);
    });
  });

  describe('conditional reads', () => {
    it('ignores an If-Modified-Since that is no HTTP date, rather than answering 304', async () => {
      const created = await http('POST', `${fhir}/Patient`, { body: buildPatient({ family }) });
      const path = `/fhir/Patient/${String(created.body.id)}`;
      const later = new Date(Date.now() + 60_000);
      // What fhir-kit-client or HAPI send: an IMF-fixdate, and the obsolete forms.
      for (const since of [later.toUTCString(), later.toISOString()]) {
        const res = await wire('GET', path, { 'if-modified-since': since });
        expect([since, res.status]).toEqual([since, 304]);
      }
      for (const since of ['3000', String(later.getUTCFullYear() + 1), '2999-01-01']) {
        const res = await wire('GET', path, { 'if-modified-since': since });
        expect([since, res.status]).toEqual([since, 200]);
        expect(JSON.parse(res.bytes.toString('utf8')).id).toBe(created.body.id);
      }
    });
  });

  describe('Prefer: return=minimal', () => {
    it('answers a create, update or patch with the version headers and no body nor Content-Type', async () => {
      const minimal = { prefer: 'return=minimal' };
      const created = await http('POST', `${fhir}/Patient`, {
        body: buildPatient({ family }),
        headers: minimal,
      });
      expect(created.status).toBe(201);
      expect(created.text).toBe('');
      expect(created.headers.get('content-type')).toBeNull();
      expect(created.headers.get('etag')).toBe('W/"1"');
      const location = created.headers.get('location')!;
      const id = /\/Patient\/([^/]+)\/_history\/1$/.exec(location)![1]!;

      const updated = await http('PUT', `${fhir}/Patient/${id}`, {
        body: { ...buildPatient({ family }), id },
        headers: minimal,
      });
      expect(updated.status).toBe(200);
      expect(updated.text).toBe('');
      expect(updated.headers.get('content-type')).toBeNull();
      expect(updated.headers.get('etag')).toBe('W/"2"');
      expect(updated.headers.get('last-modified')).toBeTruthy();

      const patched = await http('PATCH', `${fhir}/Patient/${id}`, {
        raw: JSON.stringify([{ op: 'replace', path: '/gender', value: 'male' }]),
        headers: { ...minimal, 'content-type': 'application/json-patch+json' },
      });
      expect(patched.status).toBe(200);
      expect(patched.text).toBe('');
      expect(patched.headers.get('content-type')).toBeNull();
      expect(patched.headers.get('etag')).toBe('W/"3"');
    });
  });

  describe('Prefer with a quoted value (RFC 7240)', () => {
    it('honours return="minimal" and return="OperationOutcome" as their unquoted forms', async () => {
      const created = await http('POST', `${fhir}/Patient`, {
        body: buildPatient({ family }),
        headers: { prefer: 'return="OperationOutcome"' },
      });
      expect(created.status).toBe(201);
      expect(created.body.resourceType).toBe('OperationOutcome');
      const id = String(/\/Patient\/([^/]+)\//.exec(created.headers.get('location')!)![1]);
      const updated = await http('PUT', `${fhir}/Patient/${id}`, {
        body: { ...buildPatient({ family }), id },
        headers: { prefer: 'return = "minimal"' },
      });
      expect(updated.status).toBe(200);
      expect(updated.text).toBe('');
      const deleted = await http('DELETE', `${fhir}/Patient/${id}`, {
        headers: { prefer: 'return="OperationOutcome"' },
      });
      expect(deleted.status).toBe(200);
      expect(deleted.body.resourceType).toBe('OperationOutcome');
    });
  });

  describe('content negotiation', () => {
    it("judges the _format of a POST search's form body as it judges one in the URL", async () => {
      const form = (body: string, accept = '*/*') =>
        http('POST', `${fhir}/Patient/_search`, {
          raw: body,
          headers: { 'content-type': 'application/x-www-form-urlencoded', accept },
        });
      const refused = [
        '_format=xml',
        '_format=application%2Ffhir%2Bxml',
        '_format=json&_format=xml',
        '_format=application%2Ffhir%2Bjson%3B%20fhirVersion%3D5.0',
      ];
      for (const format of refused) {
        const res = await form(`family=${family}&${format}`);
        expect([format, res.status]).toEqual([format, 406]);
        expect(res.body.resourceType).toBe('OperationOutcome');
      }
      // JSON, or a field left empty (a form sends every field), is answered.
      for (const format of ['_format=json', '_format=application%2Ffhir%2Bjson', '_format=']) {
        const res = await form(`family=${family}&_count=1&${format}`);
        expect([format, res.status, res.body.resourceType]).toEqual([format, 200, 'Bundle']);
      }
      // It overrides Accept there too, as in a URL.
      const xml = 'application/fhir+xml';
      expect((await form(`family=${family}&_count=1&_format=json`, xml)).status).toBe(200);
      expect((await form(`family=${family}&_count=1`, xml)).status).toBe(406);
    });

    it('answers in the JSON media type the Accept header weighs highest, and 406 when it takes neither', async () => {
      const fhirJson = 'application/fhir+json; charset=utf-8';
      const plainJson = 'application/json; charset=utf-8';
      const answers: [string, string][] = [
        ['application/fhir+json', fhirJson],
        // What axios and browsers send: every type weighs alike, and FHIR's own is preferred.
        ['application/json, text/plain, */*', fhirJson],
        ['text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8', fhirJson],
        [
          'application/fhir+json; fhirVersion=3.0, application/fhir+json; fhirVersion=4.0',
          fhirJson,
        ],
        // q=0 is "not acceptable" (RFC 9110 section 12.4.2): it was answered as FHIR JSON.
        ['application/fhir+json;q=0, */*', plainJson],
        ['application/fhir+json;q=0.1, application/json;q=0.9', plainJson],
        ['application/json', plainJson],
      ];
      const created = await http('POST', `${fhir}/Patient`, { body: buildPatient({ family }) });
      const read = `/fhir/Patient/${String(created.body.id)}`;
      for (const [accept, contentType] of answers) {
        const res = await wire('GET', read, { accept });
        expect([accept, res.status, res.headers['content-type']]).toEqual([
          accept,
          200,
          contentType,
        ]);
        expect(JSON.parse(res.bytes.toString('utf8')).id).toBe(created.body.id);
      }
      // An error, and a POST search's Bundle, are labelled as the answer would have been.
      const missing = await wire('GET', '/fhir/Patient/no-such-patient', {
        accept: 'application/json',
      });
      expect([missing.status, missing.headers['content-type']]).toEqual([404, plainJson]);
      const posted = await http('POST', `${fhir}/Patient/_search`, {
        raw: `family=${family}&_count=1`,
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          accept: 'application/json',
        },
      });
      expect([posted.status, posted.headers.get('content-type')]).toEqual([200, plainJson]);
      // `_format=json` overrides Accept, and names FHIR JSON (http.html).
      const format = await wire('GET', `${read}?_format=json`, { accept: 'application/json' });
      expect(format.headers['content-type']).toBe(fhirJson);

      for (const accept of [
        'application/fhir+json;q=0, application/json;q=0, */*',
        'application/fhir+json;q=0',
        'application/fhir+json;fhirVersion=4.0;q=0, application/fhir+json',
        '*/*;q=0',
      ]) {
        const res = await wire('GET', read, { accept });
        const outcome = JSON.parse(res.bytes.toString('utf8'));
        expect([accept, res.status, outcome.resourceType]).toEqual([
          accept,
          406,
          'OperationOutcome',
        ]);
      }
    });

    it("answers an operation's body in a format other than a Parameters resource's with 415", async () => {
      const form = { 'content-type': 'application/x-www-form-urlencoded' };
      const patch = { 'content-type': 'application/json-patch+json' };
      // Each was a 400 "The body of an operation is a Parameters resource", where a resource's
      // body in the wrong format is a 415 naming the formats taken.
      const posts: [string, Record<string, string>, string][] = [
        ['/fhir/ValueSet/$expand', form, 'url=http://hl7.org/fhir/ValueSet/administrative-gender'],
        ['/fhir/ValueSet/$validate-code', patch, '[]'],
        ['/fhir/CodeSystem/$lookup', form, 'code=male'],
        ['/fhir/Observation/$lastn', form, 'patient=x'],
        ['/fhir/Patient/x/$everything', form, '_count=1'],
        ['/fhir/Patient/x/$validate', patch, '[]'],
        ['/fhir/Patient/$export', form, '_type=Patient'],
      ];
      for (const [path, headers, raw] of posts) {
        const res = await http('POST', `${testApp.url}${path}`, { raw, headers });
        expect([path, res.status]).toEqual([path, 415]);
        expect(res.body.issue[0].diagnostics).toContain('application/fhir+json');
      }
    });
  });

  describe('operations', () => {
    it('answers an operation it does not offer as one, whatever the method or level', async () => {
      const created = await http('POST', `${fhir}/Patient`, { body: buildPatient({ family }) });
      const id = String(created.body.id);
      // Routes for any type or id took `$foo` as a type (a compartment search, a create) or an
      // id, and answered "Unknown resource type" or a 405 naming methods that did no better.
      const unknown: [string, string][] = [
        ['GET', `/fhir/Patient/${id}/$foo`],
        ['POST', `/fhir/Patient/${id}/$foo`],
        ['DELETE', `/fhir/Patient/${id}/$foo`],
        ['OPTIONS', `/fhir/Patient/${id}/%24foo`],
        ['GET', '/fhir/$foo'],
        ['POST', '/fhir/$foo'],
        ['GET', '/fhir/Patient/$foo'],
        ['POST', '/fhir/Patient/$foo'],
      ];
      for (const [method, path] of unknown) {
        const res = await wire(method, path);
        const outcome = JSON.parse(res.bytes.toString('utf8'));
        expect([method, path, res.status, outcome.issue[0].code]).toEqual([
          method,
          path,
          400,
          'not-supported',
        ]);
        expect(outcome.issue[0].diagnostics).toBe('$foo is not an operation offered here');
      }
      const elsewhere = await wire('GET', `/fhir/Observation/${id}/$everything`);
      expect(elsewhere.status).toBe(400);
      expect(JSON.parse(elsewhere.bytes.toString('utf8')).issue[0].diagnostics).toBe(
        '$everything is not an operation offered here',
      );
      // A `$` where no operation goes is not called one.
      const version = await wire('GET', `/fhir/Patient/${id}/_history/$1`);
      expect(JSON.parse(version.bytes.toString('utf8')).issue[0].diagnostics).not.toContain(
        'operation',
      );
      // An operation offered at the path with other methods is a 405 naming them.
      const put = await wire('PUT', `/fhir/Patient/${id}/$everything`);
      expect(put.status).toBe(405);
      expect(put.headers['allow']).toBe('GET, HEAD, POST');
      const match = await wire('GET', '/fhir/Patient/$match');
      expect(match.status).toBe(405);
      expect(match.headers['allow']).toBe('POST');
    });
  });

  describe('authentication first', () => {
    it('answers a FHIR request without a valid token 401, whatever else it would be refused for', async () => {
      const id = randomUUID();
      // Each was answered before the token check: what a path offers (its operations, its
      // methods, its formats) was told to anyone who asked.
      const refused: [string, string, Record<string, string>][] = [
        ['GET', '/fhir/$foo', {}],
        ['GET', `/fhir/Patient/${id}/$foo`, {}],
        ['POST', '/fhir/Patient/$foo', {}],
        ['PUT', `/fhir/Patient/${id}/$everything`, {}],
        ['GET', '/fhir/Patient/$match', {}],
        ['DELETE', '/fhir/Patient/_history', {}],
        ['POST', '/fhir/AuditEvent', {}],
        ['GET', '/fhir/AuditEvent/_history', {}],
        ['OPTIONS', '/fhir/Patient', {}],
        ['GET', '/fhir/Patient', { accept: 'application/fhir+xml' }],
        ['GET', '/fhir/Patient?_format=xml', {}],
        ['POST', '/fhir/Patient', { 'content-type': 'text/csv' }],
        ['POST', '/fhir/Patient', { 'content-type': 'application/fhir+json; fhirVersion=5.0' }],
        ['GET', '/fhir/no/such/path/at/all', {}],
        ['GET', '/fhir/Patient/%FF', {}],
      ];
      const forged = { authorization: 'Bearer not.a-valid.token' };
      for (const [method, path, headers] of refused) {
        for (const [sent, challenge] of [
          [headers, 'Bearer realm="carevault"'],
          [{ ...headers, ...forged }, 'Bearer realm="carevault", error="invalid_token"'],
        ] as const) {
          const res = await anonymous(method, path, sent);
          const outcome = JSON.parse(res.bytes.toString('utf8'));
          expect([method, path, res.status, outcome.issue[0].code]).toEqual([
            method,
            path,
            401,
            'login',
          ]);
          expect(res.headers['www-authenticate']).toBe(challenge);
          expect(res.headers['allow']).toBeUndefined();
        }
      }
      // The paths a client reads before it has a token keep their answers.
      const metadata = await anonymous('DELETE', '/fhir/metadata');
      expect([metadata.status, metadata.headers['allow']]).toEqual([405, 'GET, HEAD']);
      expect((await anonymous('GET', '/fhir/metadata?_format=xml')).status).toBe(406);
      expect((await anonymous('POST', '/fhir/$versions')).status).toBe(405);
      expect((await anonymous('GET', '/fhir/.well-known/smart-configuration')).status).toBe(200);
    });

    it('answers a request without a valid token 401 under every other prefix that takes one', async () => {
      const db = testApp.app.get<DataSource>(getDataSourceToken());
      const csv = { 'content-type': 'text/csv' };
      // Each was answered before the token check, as /fhir's were until the same day.
      const refused: [string, string, Record<string, string>, string?][] = [
        ['DELETE', '/admin/users', {}],
        ['GET', '/admin/nothing', {}],
        ['POST', '/admin/users/someone/disable', csv, 'a,b'],
        ['PUT', '/subscriptions', {}],
        ['GET', '/subscriptions/nothing', {}],
        ['DELETE', '/hl7/messages', {}],
        ['POST', '/hl7/v2', csv, 'a,b'],
        ['POST', '/hl7/messages/x/reprocess', { 'content-type': 'application/json' }, '{'],
        ['GET', '/hl7/outbox/x/resend', {}],
        ['GET', '/auth/token/scoped', {}],
        ['POST', '/auth/break-glass', csv, 'a,b'],
        ['GET', '/auth/nothing', {}],
      ];
      const forged = { authorization: 'Bearer not.a-valid.token' };
      for (const [method, path, headers, body] of refused) {
        for (const sent of [headers, { ...headers, ...forged }]) {
          const requestId = randomUUID();
          const res = await anonymous(method, path, { ...sent, 'x-request-id': requestId }, body);
          expect([method, path, res.status, res.headers['allow']]).toEqual([
            method,
            path,
            401,
            undefined,
          ]);
          const rows = await db.query<{ status_code: number; detail: string }[]>(
            'SELECT status_code, detail FROM audit_event WHERE request_id = $1',
            [requestId],
          );
          expect([path, rows]).toEqual([path, [{ status_code: 401, detail: 'login' }]]);
        }
      }
      // With a valid token, the refusal is told as before.
      const method = await wire('DELETE', '/admin/users');
      expect([method.status, method.headers['allow']]).toEqual([405, 'GET, HEAD']);
      // The public paths keep their answers: signing in, discovery, health, and no route at all.
      expect((await anonymous('GET', '/auth/login')).status).toBe(405);
      expect((await anonymous('POST', '/auth/token', csv, 'a,b')).status).toBe(415);
      expect((await anonymous('DELETE', '/.well-known/jwks.json')).status).toBe(405);
      expect((await anonymous('PUT', '/health')).status).toBe(405);
      expect((await anonymous('POST', '/metrics')).status).toBe(405);
      expect((await anonymous('GET', '/no/such/route')).status).toBe(404);
    });

    it('records the refusal of a request without a token as the 401 it was answered', async () => {
      const db = testApp.app.get<DataSource>(getDataSourceToken());
      const requestId = randomUUID();
      const res = await anonymous('GET', '/fhir/Patient/x/$foo', { 'x-request-id': requestId });
      expect(res.status).toBe(401);
      const rows = await db.query<{ status_code: number; outcome: string; detail: string }[]>(
        'SELECT status_code, outcome, detail FROM audit_event WHERE request_id = $1',
        [requestId],
      );
      expect(rows).toEqual([{ status_code: 401, outcome: 'failure', detail: 'login' }]);
    });
  });

  describe('CORS for a browser SMART app', () => {
    it('lets a browser send every request header a FHIR client sends, Accept and Content-Encoding too', async () => {
      const preflight = await wire('OPTIONS', '/fhir/Patient', {
        origin,
        'access-control-request-method': 'POST',
        // An Accept with a quoted fhirVersion is not CORS-safelisted, nor is Content-Encoding.
        'access-control-request-headers': 'accept,authorization,content-encoding,content-type',
      });
      expect(preflight.status).toBe(204);
      expect(preflight.headers['access-control-allow-origin']).toBe(origin);
      const allowed = String(preflight.headers['access-control-allow-headers'])
        .split(',')
        .map((name) => name.trim());
      expect(allowed).toEqual(
        expect.arrayContaining(['accept', 'authorization', 'content-encoding', 'content-type']),
      );
      const exposed = await wire('GET', '/fhir/metadata', { origin });
      expect(exposed.headers['access-control-allow-origin']).toBe(origin);
    });

    it("answers a URL the router cannot decode, and its preflight, with CORS's headers", async () => {
      // A browser app's request with a token is preflighted: both answers must let it through,
      // or the app sees a network error instead of the OperationOutcome.
      for (const path of ['/fhir/Patient/%FF', `/fhir/Patient/${'a'.repeat(101)}`]) {
        const preflight = await wire('OPTIONS', path, {
          origin,
          'access-control-request-method': 'GET',
          'access-control-request-headers': 'authorization',
        });
        expect([path, preflight.status]).toEqual([path, 204]);
        expect(preflight.headers['access-control-allow-origin']).toBe(origin);
        expect(preflight.headers['access-control-allow-headers']).toContain('authorization');
        expect(preflight.headers['access-control-allow-methods']).toContain('GET');
        expect(preflight.headers['x-request-id']).toBeTruthy();
        const res = await wire('GET', path, { origin });
        expect([path, res.status]).toEqual([path, path.includes('%FF') ? 400 : 414]);
        expect(res.headers['access-control-allow-origin']).toBe(origin);
        expect(res.headers['access-control-expose-headers']).toContain('x-request-id');
        expect(varies(res.headers)).toContain('origin');
        expect(JSON.parse(res.bytes.toString('utf8')).resourceType).toBe('OperationOutcome');
      }
      // Another origin is not let in; a plain OPTIONS is refused as the GET is.
      const other = await wire('GET', '/fhir/Patient/%FF', { origin: 'https://other.example' });
      expect(other.status).toBe(400);
      expect(other.headers['access-control-allow-origin']).toBeUndefined();
      const options = await wire('OPTIONS', '/fhir/Patient/%FF');
      expect(options.status).toBe(400);
    });
  });
});
