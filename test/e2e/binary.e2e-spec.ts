import { randomBytes, randomUUID } from 'node:crypto';
import { getDataSourceToken } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import { createUser, enableMfa, loginWithMfa, tokenFor } from '../support/auth.js';
import { buildPatient } from '../support/factories.js';
import { authorizedHttp, type HttpFn, createResource } from '../support/http.js';
import { createTestApp, type TestApp } from '../support/test-app.js';

const CONFIDENTIALITY = 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality';

/** A PDF-like body with bytes that are not UTF-8, so any text round trip would show. */
function document(): Buffer {
  return Buffer.concat([Buffer.from('%PDF-1.7\n'), randomBytes(2048), Buffer.from([0xff, 0xfe])]);
}

describe('Binary: documents in their own format, following their securityContext', () => {
  let testApp: TestApp;
  let db: DataSource;
  let fhir: string;
  let doctorToken: string;
  let doctor: HttpFn;

  async function send(
    method: 'POST' | 'PUT',
    url: string,
    body: Buffer,
    headers: Record<string, string>,
    token = doctorToken,
  ): Promise<Response> {
    return fetch(url, {
      method,
      body,
      headers: { authorization: `Bearer ${token}`, ...headers },
    });
  }

  async function read(
    url: string,
    headers: Record<string, string> = {},
    token = doctorToken,
  ): Promise<{ status: number; headers: Headers; bytes: Buffer }> {
    const response = await fetch(url, {
      headers: { authorization: `Bearer ${token}`, ...headers },
    });
    return {
      status: response.status,
      headers: response.headers,
      bytes: Buffer.from(await response.arrayBuffer()),
    };
  }

  const create = (resource: Record<string, unknown>) => createResource(doctor, fhir, resource);

  async function binaryFor(context: string | undefined): Promise<string> {
    const res = await send('POST', `${fhir}/Binary`, document(), {
      'content-type': 'application/pdf',
      ...(context ? { 'x-security-context': context } : {}),
    });
    expect(res.status).toBe(201);
    return ((await res.json()) as { id: string }).id;
  }

  async function patientToken(patient: string): Promise<string> {
    const res = await doctor('POST', `${testApp.url}/auth/token/scoped`, {
      body: { scope: 'patient/*.rs', patient },
      headers: { 'content-type': 'application/json' },
    });
    expect(res.status).toBe(200);
    return res.body.access_token as string;
  }

  const documentReference = (patient: string, restricted = false) => ({
    resourceType: 'DocumentReference',
    status: 'current',
    subject: { reference: `Patient/${patient}` },
    content: [{ attachment: { contentType: 'application/pdf', title: 'Discharge letter' } }],
    ...(restricted ? { meta: { security: [{ system: CONFIDENTIALITY, code: 'R' }] } } : {}),
  });

  beforeAll(async () => {
    testApp = await createTestApp();
    db = testApp.app.get<DataSource>(getDataSourceToken());
    fhir = `${testApp.url}/fhir`;
    doctorToken = await tokenFor(testApp, 'doctor');
    doctor = authorizedHttp(doctorToken);
  });

  afterAll(async () => {
    await testApp.close();
  });

  it('stores a document posted as it is and gives it back byte for byte, or as FHIR JSON when asked', async () => {
    const bytes = document();
    const created = await send('POST', `${fhir}/Binary`, bytes, {
      'content-type': 'application/pdf',
    });
    expect(created.status).toBe(201);
    const binary = (await created.json()) as { id: string; contentType: string; data: string };
    expect(binary.contentType).toBe('application/pdf');
    expect(Buffer.from(binary.data, 'base64').equals(bytes)).toBe(true);
    expect(created.headers.get('location')).toMatch(/\/fhir\/Binary\/[^/]+\/_history\/1$/);

    const url = `${fhir}/Binary/${binary.id}`;
    for (const accept of ['application/pdf', '*/*', '']) {
      const native = await read(url, accept ? { accept } : {});
      expect(native.status).toBe(200);
      expect(native.headers.get('content-type')).toBe('application/pdf');
      expect(native.bytes.equals(bytes)).toBe(true);
      expect(native.headers.get('etag')).toBe('W/"1"');
      expect(native.headers.get('content-security-policy')).toContain('sandbox');
      expect(native.headers.get('x-content-type-options')).toBe('nosniff');
    }
    // Asked for FHIR content it cannot give (XML, another FHIR version), it says so: the bytes
    // are not what was asked for.
    for (const accept of [
      'application/fhir+xml',
      'application/fhir+json; fhirVersion=5.0',
      'application/pdf;q=0, application/fhir+xml',
    ]) {
      for (const path of ['', '/_history/1']) {
        const refused = await read(`${url}${path}`, { accept });
        expect({ accept, path, status: refused.status }).toEqual({ accept, path, status: 406 });
      }
    }
    // Anything else the bytes can answer, they do.
    for (const accept of ['text/plain', 'application/fhir+xml, */*']) {
      const native = await read(url, { accept });
      expect({ accept, status: native.status }).toEqual({ accept, status: 200 });
      expect(native.bytes.equals(bytes)).toBe(true);
    }
    const notModified = await read(url, { accept: 'application/pdf', 'if-none-match': 'W/"1"' });
    expect(notModified.status).toBe(304);
    expect(notModified.bytes.length).toBe(0);

    // Read as FHIR JSON, it is labelled as Accept chose (negotiateJson), as any other read is:
    // until 2026-12-07 `Accept: application/json` alone got application/fhir+json here only.
    for (const [suffix, headers, type] of [
      ['', { accept: 'application/fhir+json' }, 'application/fhir+json'],
      ['?_format=json', {}, 'application/fhir+json'],
      ['', { accept: 'application/json' }, 'application/json'],
      ['/_history/1', { accept: 'application/json' }, 'application/json'],
      ['', { accept: 'application/json, application/fhir+json' }, 'application/fhir+json'],
      ['', { accept: 'application/fhir+json;q=0.5, application/json' }, 'application/json'],
    ] as const) {
      const json = await read(`${url}${suffix}`, headers);
      expect([suffix, headers, json.headers.get('content-type')]).toEqual([
        suffix,
        headers,
        `${type}; charset=utf-8`,
      ]);
      expect(JSON.parse(json.bytes.toString('utf8'))).toMatchObject({
        resourceType: 'Binary',
        id: binary.id,
        contentType: 'application/pdf',
        data: binary.data,
      });
    }

    // An update in the document's own format is a new version; the old one stays readable.
    const text = Buffer.from('Corrected letter: see page 2.\n');
    const updated = await send('PUT', url, text, { 'content-type': 'text/plain' });
    expect(updated.status).toBe(200);
    const current = await read(url);
    expect(current.headers.get('content-type')).toBe('text/plain');
    expect(current.bytes.toString('utf8')).toBe(text.toString('utf8'));
    const first = await read(`${url}/_history/1`);
    expect(first.bytes.equals(bytes)).toBe(true);
    // HTML is stored as given, but sandboxed when read: it cannot run as this origin's page.
    const html = await send('POST', `${fhir}/Binary`, Buffer.from('<script>alert(1)</script>'), {
      'content-type': 'text/html',
    });
    const page = await read(`${fhir}/Binary/${((await html.json()) as { id: string }).id}`);
    expect(page.headers.get('content-type')).toBe('text/html');
    expect(page.headers.get('content-security-policy')).toBe("sandbox; default-src 'none'");
  });

  it('takes native content for Binary only, and keeps other routes to their formats', async () => {
    const patient = await send('POST', `${fhir}/Patient`, document(), {
      'content-type': 'application/pdf',
    });
    expect(patient.status).toBe(415);
    const login = await fetch(`${testApp.url}/auth/login`, {
      method: 'POST',
      body: document(),
      headers: { 'content-type': 'application/pdf' },
    });
    expect(login.status).toBe(415);
    const search = await read(`${fhir}/Patient?_count=1`, { accept: 'application/pdf' });
    expect(search.status).toBe(406);
    // A form is parsed into fields, not kept as bytes: it is neither a document nor a resource.
    const form = await send('POST', `${fhir}/Binary`, Buffer.from('resourceType=Binary'), {
      'content-type': 'application/x-www-form-urlencoded',
    });
    expect(form.status).toBe(415);
    // A Binary's JSON is still FHIR JSON.
    const json = await doctor('POST', `${fhir}/Binary`, {
      body: { resourceType: 'Binary', contentType: 'text/plain', data: 'aGVsbG8=' },
    });
    expect(json.status).toBe(201);
    expect((await read(`${fhir}/Binary/${json.body.id}`)).bytes.toString()).toBe('hello');
  });

  it('refuses a document larger than BODY_LIMIT with 413, whatever its media type', async () => {
    // text/plain shares its parser with HL7 v2 over HTTP, whose limit is HL7_MAX_FRAME_BYTES:
    // a text document over BODY_LIMIT was read whole and then refused as a 400 on Binary.data.
    const large = Buffer.alloc(1_048_576 + 1, 'a');
    for (const type of ['application/pdf', 'text/plain', 'x-application/hl7-v2+er7']) {
      const res = await send('POST', `${fhir}/Binary`, large, { 'content-type': type });
      const body = (await res.json()) as { issue: { code: string }[] };
      expect({ type, status: res.status, code: body.issue[0]?.code }).toEqual({
        type,
        status: 413,
        code: 'too-long',
      });
    }
  });

  it("follows the securityContext: a patient's app opens its own documents and no one else's", async () => {
    const mine = await create(buildPatient());
    const theirs = await create(buildPatient());
    const myLetter = await create(documentReference(mine));
    const theirLetter = await create(documentReference(theirs));
    const viaDocument = await binaryFor(`DocumentReference/${myLetter}`);
    const viaPatient = await binaryFor(`Patient/${mine}`);
    const otherDocument = await binaryFor(`DocumentReference/${theirLetter}`);
    const otherPatient = await binaryFor(`Patient/${theirs}`);
    const noContext = await binaryFor(undefined);

    const app = await patientToken(mine);
    const native = await read(`${fhir}/Binary/${viaDocument}`, {}, app);
    expect(native.status).toBe(200);
    expect(native.headers.get('x-security-context')).toBe(`DocumentReference/${myLetter}`);
    expect((await read(`${fhir}/Binary/${viaPatient}`, {}, app)).status).toBe(200);
    for (const id of [otherDocument, otherPatient, noContext]) {
      expect({ id, status: (await read(`${fhir}/Binary/${id}`, {}, app)).status }).toEqual({
        id,
        status: 404,
      });
    }
    // Lists (searches, histories) follow the same rules.
    const listed = await authorizedHttp(app)('GET', `${fhir}/Binary?_count=1000`);
    expect(listed.status).toBe(200);
    const ids = (listed.body.entry ?? []).map(
      (entry: { resource: { id: string } }) => entry.resource.id,
    );
    expect(ids).toContain(viaPatient);
    expect(ids).toContain(viaDocument);
    expect(ids).not.toContain(otherPatient);
    expect(ids).not.toContain(otherDocument);
    expect(ids).not.toContain(noContext);
    // A count cannot follow each Binary's securityContext: it would have counted the others'.
    for (const as of [authorizedHttp(app), doctor]) {
      const counted = await as('GET', `${fhir}/Binary?_summary=count`);
      expect(counted.status).toBe(400);
      expect(counted.body.issue[0].code).toBe('not-supported');
    }
    const totalled = await authorizedHttp(app)('GET', `${fhir}/Binary?_total=accurate`);
    expect(totalled.status).toBe(200);
    expect(totalled.body.total).toBeUndefined();
    expect(JSON.stringify(totalled.body.entry)).toContain(
      'The Bundle has no total: who may see each Binary follows its securityContext',
    );

    // The disclosure is accounted to the patient whose document it is.
    const requestId = randomUUID();
    await read(`${fhir}/Binary/${viaDocument}`, { 'x-request-id': requestId }, app);
    const [row] = await db.query<{ patient_ids: string[] }[]>(
      `SELECT patient_ids FROM audit_event WHERE request_id = $1`,
      [requestId],
    );
    expect(row!.patient_ids).toEqual([mine]);

    // A patient's app cannot file a document under someone else's record.
    const write = await send(
      'POST',
      `${fhir}/Binary`,
      document(),
      { 'content-type': 'application/pdf', 'x-security-context': `Patient/${theirs}` },
      (
        await doctor('POST', `${testApp.url}/auth/token/scoped`, {
          body: { scope: 'patient/*.cruds', patient: mine },
          headers: { 'content-type': 'application/json' },
        })
      ).body.access_token as string,
    );
    expect(write.status).toBe(403);
  });

  it('keeps the document of a restricted record restricted', async () => {
    const patient = await create(buildPatient());
    const sealed = await create(documentReference(patient, true));
    const binary = await binaryFor(`DocumentReference/${sealed}`);
    const res = await read(`${fhir}/Binary/${binary}`);
    expect(res.status).toBe(403);
    expect(res.bytes.toString('utf8')).toContain('break-glass');
    const json = await read(`${fhir}/Binary/${binary}`, { accept: 'application/fhir+json' });
    expect(json.status).toBe(403);
    // Nor does it show in a list, as the restricted letter itself does not.
    const open = await binaryFor(`DocumentReference/${await create(documentReference(patient))}`);
    for (const url of [
      `${fhir}/Binary?_id=${binary},${open}`,
      `${fhir}/Binary/_history?_count=1000`,
    ]) {
      const list = await doctor('GET', url);
      expect(list.status).toBe(200);
      const ids = (list.body.entry ?? []).map(
        (entry: { resource?: { id: string } }) => entry.resource?.id,
      );
      expect({ url, open: ids.includes(open), restricted: ids.includes(binary) }).toEqual({
        url,
        open: true,
        restricted: false,
      });
    }
  });

  it('keeps it restricted whatever form the securityContext takes, and after the record is deleted', async () => {
    const patient = await create(buildPatient());
    const sealed = await create(documentReference(patient, true));
    const forms = [`DocumentReference/${sealed}/_history/1`, `${fhir}/DocumentReference/${sealed}`];
    // Never stored: refused as any reference to nothing is, since 2026-12-06 (it was stored,
    // opening to no one, and a Patient/<MRN> there named the MRN as a patient in audit rows).
    // With FHIR_REFERENTIAL_INTEGRITY=false it is stored and opens to no one rather than to all.
    const nowhere = await send('POST', `${fhir}/Binary`, document(), {
      'content-type': 'application/pdf',
      'x-security-context': `DocumentReference/${randomUUID()}`,
    });
    expect(nowhere.status).toBe(400);
    for (const context of forms) {
      const binary = await binaryFor(context);
      expect({ context, status: (await read(`${fhir}/Binary/${binary}`)).status }).toEqual({
        context,
        status: 403,
      });
    }
    // Deleting the restricted letter does not open its bytes.
    const letter = await create(documentReference(patient, true));
    const binary = await binaryFor(`DocumentReference/${letter}`);
    const clinician = await createUser(testApp, ['doctor']);
    const secret = await enableMfa(testApp, clinician);
    const glass = authorizedHttp((await loginWithMfa(testApp, clinician, secret)).access_token);
    const granted = await glass('POST', `${testApp.url}/auth/break-glass`, {
      body: { patient, reason: 'Removing a letter filed in error' },
      headers: { 'content-type': 'application/json' },
    });
    expect(granted.status).toBe(201);
    expect((await glass('DELETE', `${fhir}/DocumentReference/${letter}`)).status).toBe(204);
    expect((await read(`${fhir}/Binary/${binary}`)).status).toBe(403);
  });

  it('closes the versions of a Binary written before its document was attached', async () => {
    const patient = await create(buildPatient());
    const sealed = await create(documentReference(patient, true));
    const binary = await binaryFor(undefined);
    const url = `${fhir}/Binary/${binary}`;
    const attached = await send('PUT', url, document(), {
      'content-type': 'application/pdf',
      'x-security-context': `DocumentReference/${sealed}`,
    });
    expect(attached.status).toBe(200);
    expect((await read(url)).status).toBe(403);
    expect((await read(`${url}/_history/2`)).status).toBe(403);
    expect((await read(`${url}/_history/1`)).status).toBe(403);
    expect((await doctor('GET', `${url}/_history`)).status).toBe(403);
    const list = await doctor('GET', `${fhir}/Binary/_history?_count=1000`);
    const ids = (list.body.entry ?? []).map(
      (entry: { resource?: { id: string } }) => entry.resource?.id,
    );
    expect(ids).not.toContain(binary);
  });
});
