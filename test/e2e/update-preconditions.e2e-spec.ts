import { buildPatient } from '../support/factories.js';
import { tokenFor } from '../support/auth.js';
import { authorizedHttp, type HttpFn } from '../support/http.js';
import { createTestApp, type TestApp } from '../support/test-app.js';

/**
 * If-None-Match on PUT (RFC 9110 §13.1.2): `*` makes the PUT a create that never overwrites,
 * and a list of ETags refuses to write over those versions. `If-Match: *` (§13.1.1) holds when
 * the resource exists: an update that never creates. Each is a 412 when it fails.
 */
describe('FHIR REST: If-None-Match and If-Match: * on writes', () => {
  let testApp: TestApp;
  let http: HttpFn;
  let fhir: string;

  beforeAll(async () => {
    testApp = await createTestApp();
    http = authorizedHttp(await tokenFor(testApp, 'doctor'));
    fhir = `${testApp.url}/fhir`;
  });

  afterAll(async () => {
    await testApp.close();
  });

  const uniqueId = (): string => `inm-${Date.now()}-${Math.random().toString(36).slice(2, 8)}`;

  it('creates with If-None-Match: * when the id is new, and refuses to write over it after', async () => {
    const id = uniqueId();
    const body = { ...buildPatient(), id };
    const created = await http('PUT', `${fhir}/Patient/${id}`, {
      headers: { 'if-none-match': '*' },
      body,
    });
    expect(created.status).toBe(201);

    const again = await http('PUT', `${fhir}/Patient/${id}`, {
      headers: { 'if-none-match': '*' },
      body: { ...body, gender: 'other' },
    });
    expect(again.status).toBe(412);
    expect(again.body.resourceType).toBe('OperationOutcome');
    const read = await http('GET', `${fhir}/Patient/${id}`);
    expect(read.body.meta.versionId).toBe('1');
    expect(read.body.gender).not.toBe('other');
  });

  it('recreates a deleted resource with If-None-Match: *, which has no current version', async () => {
    const id = uniqueId();
    const body = { ...buildPatient(), id };
    expect((await http('PUT', `${fhir}/Patient/${id}`, { body })).status).toBe(201);
    expect((await http('DELETE', `${fhir}/Patient/${id}`)).status).toBe(204);
    const recreated = await http('PUT', `${fhir}/Patient/${id}`, {
      headers: { 'if-none-match': '*' },
      body,
    });
    expect(recreated.status).toBe(201);
  });

  it('refuses an update over a version named in If-None-Match, and writes over another', async () => {
    const id = uniqueId();
    const body = { ...buildPatient(), id };
    expect((await http('PUT', `${fhir}/Patient/${id}`, { body })).status).toBe(201);
    const refused = await http('PUT', `${fhir}/Patient/${id}`, {
      headers: { 'if-none-match': 'W/"1"' },
      body: { ...body, gender: 'other' },
    });
    expect(refused.status).toBe(412);
    const written = await http('PUT', `${fhir}/Patient/${id}`, {
      headers: { 'if-none-match': 'W/"7", W/"8"' },
      body: { ...body, gender: 'other' },
    });
    expect(written.status).toBe(200);
    expect(written.body.meta.versionId).toBe('2');
  });

  it('refuses a conditional update with If-None-Match: * when the criteria match a resource', async () => {
    const value = uniqueId();
    const body = { ...buildPatient(), identifier: [{ system: 'urn:inm', value }] };
    const created = await http('POST', `${fhir}/Patient`, { body });
    expect(created.status).toBe(201);
    const refused = await http('PUT', `${fhir}/Patient?identifier=urn:inm|${value}`, {
      headers: { 'if-none-match': '*' },
      body: { ...body, gender: 'other' },
    });
    expect(refused.status).toBe(412);
    const read = await http('GET', `${fhir}/Patient/${created.body.id}`);
    expect(read.body.meta.versionId).toBe('1');
  });

  it('updates, patches and deletes with If-Match: * only what exists', async () => {
    const id = uniqueId();
    const body = { ...buildPatient(), id };
    const notCreated = await http('PUT', `${fhir}/Patient/${id}`, {
      headers: { 'if-match': '*' },
      body,
    });
    expect(notCreated.status).toBe(412);
    expect((await http('GET', `${fhir}/Patient/${id}`)).status).toBe(404);

    expect((await http('PUT', `${fhir}/Patient/${id}`, { body })).status).toBe(201);
    const updated = await http('PUT', `${fhir}/Patient/${id}`, {
      headers: { 'if-match': '*' },
      body: { ...body, gender: 'other' },
    });
    expect(updated.status).toBe(200);
    expect(updated.body.meta.versionId).toBe('2');
    const patched = await http('PATCH', `${fhir}/Patient/${id}`, {
      headers: { 'if-match': '*', 'content-type': 'application/json-patch+json' },
      raw: JSON.stringify([{ op: 'replace', path: '/gender', value: 'female' }]),
    });
    expect(patched.status).toBe(200);
    expect(patched.body.meta.versionId).toBe('3');
    const deleted = await http('DELETE', `${fhir}/Patient/${id}`, {
      headers: { 'if-match': '*' },
    });
    expect(deleted.status).toBe(204);
    const gone = await http('PUT', `${fhir}/Patient/${id}`, {
      headers: { 'if-match': '*' },
      body,
    });
    expect(gone.status).toBe(412);
    expect((await http('GET', `${fhir}/Patient/${id}`)).status).toBe(410);
  });
});
