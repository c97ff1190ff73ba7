import { randomUUID } from 'node:crypto';
import { buildPatient } from '../support/factories.js';
import { tokenFor } from '../support/auth.js';
import { authorizedHttp, createResource, type HttpFn } from '../support/http.js';
import { createTestApp, type TestApp } from '../support/test-app.js';

const MRN = 'urn:oid:1.2.36.146.595.217.0.1';

describe('Bundle entry request URLs', () => {
  let testApp: TestApp;
  let fhir: string;
  let http: HttpFn;

  beforeAll(async () => {
    testApp = await createTestApp();
    fhir = `${testApp.url}/fhir`;
    http = authorizedHttp(await tokenFor(testApp, 'doctor'));
  });

  afterAll(async () => {
    await testApp.close();
  });

  it('refuses a write entry that names a resource by id and by criteria, changing neither', async () => {
    // `PUT Patient/a?identifier=…` names Patient a; the REST API writes Patient a. The entry
    // must not write over (or delete) another patient whom the criteria happen to find.
    const mrn = `URL-${randomUUID()}`;
    const other = await createResource(http, fhir, buildPatient({ mrn, family: 'Other' }));
    const named = await createResource(http, fhir, buildPatient({ family: 'Named' }));
    const criteria = `identifier=${MRN}|${mrn}`;
    const entries = [
      {
        resource: { ...buildPatient({ mrn, family: 'Written' }), id: named },
        request: { method: 'PUT', url: `Patient/${named}?${criteria}` },
      },
      {
        resource: { ...buildPatient({ mrn, family: 'Written' }) },
        request: { method: 'PUT', url: `Patient/${named}?${criteria}` },
      },
      {
        resource: {
          resourceType: 'Parameters',
          parameter: [
            {
              name: 'operation',
              part: [
                { name: 'type', valueCode: 'replace' },
                { name: 'path', valueString: 'Patient.active' },
                { name: 'value', valueBoolean: false },
              ],
            },
          ],
        },
        request: { method: 'PATCH', url: `Patient/${named}?${criteria}` },
      },
      { request: { method: 'DELETE', url: `Patient/${named}?${criteria}` } },
    ];
    for (const [index, entry] of entries.entries()) {
      for (const type of ['transaction', 'batch']) {
        const res = await http('POST', fhir, {
          body: { resourceType: 'Bundle', type, entry: [entry] },
        });
        const outcome = type === 'batch' ? res.body.entry?.[0]?.response?.outcome : res.body;
        expect([index, type, outcome?.issue?.[0]?.expression]).toEqual([
          index,
          type,
          ['Bundle.entry[0].request.url'],
        ]);
        expect(outcome.issue[0].diagnostics).not.toContain(mrn);
      }
    }
    for (const [id, family] of [
      [other, 'Other'],
      [named, 'Named'],
    ] as const) {
      const read = await http('GET', `${fhir}/Patient/${id}`);
      expect([read.status, read.body.meta?.versionId, read.body.name?.[0]?.family]).toEqual([
        200,
        '1',
        family,
      ]);
    }
    // A delete by id with _cascade alone is no search: still taken.
    const res = await http('POST', fhir, {
      body: {
        resourceType: 'Bundle',
        type: 'transaction',
        entry: [{ request: { method: 'DELETE', url: `Patient/${named}?_cascade=delete` } }],
      },
    });
    expect([res.status, res.body.entry?.[0]?.response?.status]).toEqual([200, '200 OK']);
    expect((await http('GET', `${fhir}/Patient/${named}`)).status).toBe(410);
    expect((await http('GET', `${fhir}/Patient/${other}`)).status).toBe(200);
  });
});
