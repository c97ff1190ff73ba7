import { randomUUID } from 'node:crypto';
import type { HttpFn } from '../support/http.js';
import { doctorApp } from '../support/doctor-app.js';
import type { TestApp } from '../support/test-app.js';

/**
 * A JSON Patch path of "" is the whole document (RFC 6902). Putting null, nothing or a string in
 * its place left the service reading a resourceType of no resource: a 500 until 2026-12-07.
 */
describe('FHIR PATCH: operations on the whole document', () => {
  let testApp: TestApp;
  let http: HttpFn;
  let fhir: string;

  beforeAll(async () => {
    ({ testApp, http, fhir } = await doctorApp());
  });

  afterAll(async () => {
    await testApp.close();
  });

  it('answers 422 for one that leaves no resource, and keeps the resource as it was', async () => {
    const id = `patch-root-${randomUUID()}`;
    const body = { resourceType: 'Patient', id, name: [{ family: 'Root' }] };
    expect((await http('PUT', `${fhir}/Patient/${id}`, { body })).status).toBe(201);
    for (const operation of [
      { op: 'replace', path: '', value: null },
      { op: 'remove', path: '' },
      { op: 'copy', from: '/nothing', path: '' },
    ]) {
      const res = await http('PATCH', `${fhir}/Patient/${id}`, {
        raw: JSON.stringify([operation]),
        headers: { 'content-type': 'application/json-patch+json' },
      });
      expect({ operation, status: res.status, issue: res.body.issue?.[0] }).toMatchObject({
        operation,
        status: 422,
        issue: { code: 'processing' },
      });
    }
    const read = await http('GET', `${fhir}/Patient/${id}`);
    expect(read.body).toMatchObject({ ...body, meta: { versionId: '1' } });
  });
});
