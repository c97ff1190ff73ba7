import { randomUUID } from 'node:crypto';
import { buildPatient } from '../support/factories.js';
import { scopedHttp, tokenFor } from '../support/auth.js';
import { authorizedHttp, type HttpFn, createResource } from '../support/http.js';
import { createTestApp, type TestApp } from '../support/test-app.js';

/**
 * Types R4 puts in no patient's compartment, yet whose records are about one patient: a stored
 * Bundle (a document, a collection) holds whole records, a MessageHeader names the event and
 * its focus, a Linkage says which records are the same person. Shared like Practitioner, they
 * were read and listed by a token scoped to any patient.
 */
describe('a patient-scoped token and records about patients outside every compartment', () => {
  let testApp: TestApp;
  let fhir: string;
  let doctor: HttpFn;
  let app: HttpFn;
  let writer: HttpFn;
  const ids = { a: '', b: '', practitioner: '' };
  const held = new Map<string, string>();

  const create = (body: Record<string, unknown>) => createResource(doctor, fhir, body);

  beforeAll(async () => {
    testApp = await createTestApp();
    fhir = `${testApp.url}/fhir`;
    const doctorToken = await tokenFor(testApp, 'doctor');
    doctor = authorizedHttp(doctorToken);
    ids.a = await create(buildPatient());
    ids.b = await create(buildPatient({ family: 'Outsider' }));
    ids.practitioner = await create({ resourceType: 'Practitioner', name: [{ family: 'Shared' }] });
    const patientB = (await doctor('GET', `${fhir}/Patient/${ids.b}`)).body;
    delete patientB.meta;
    held.set(
      'Bundle',
      await create({
        resourceType: 'Bundle',
        type: 'collection',
        entry: [{ fullUrl: `urn:uuid:${randomUUID()}`, resource: patientB }],
      }),
    );
    held.set(
      'MessageHeader',
      await create({
        resourceType: 'MessageHeader',
        eventCoding: { system: 'http://terminology.hl7.org/CodeSystem/v2-0003', code: 'A01' },
        source: { endpoint: 'http://lab.example' },
        focus: [{ reference: `Patient/${ids.b}` }],
      }),
    );
    held.set(
      'Linkage',
      await create({
        resourceType: 'Linkage',
        item: [
          { type: 'source', resource: { reference: `Patient/${ids.b}` } },
          { type: 'alternate', resource: { reference: `Patient/${ids.a}` } },
        ],
      }),
    );
    const exchange = (scope: string) => scopedHttp(testApp, doctorToken, scope, ids.a);
    app = await exchange('patient/*.rs');
    writer = await exchange('patient/*.cruds');
  });

  afterAll(async () => {
    await testApp.close();
  });

  it.each(['Bundle', 'MessageHeader', 'Linkage'])(
    'neither reads, lists nor counts a %s (404, as if it did not exist)',
    async (type) => {
      const id = held.get(type)!;
      for (const path of [`${type}/${id}`, `${type}/${id}/_history`, `${type}/${id}/_history/1`]) {
        const res = await app('GET', `${fhir}/${path}`);
        expect({ path, status: res.status }).toEqual({ path, status: 404 });
        expect(res.text).not.toContain(ids.b);
      }
      for (const path of [
        `${type}?_id=${id}`,
        `${type}/_history?_count=500`,
        '_history?_count=500',
      ]) {
        const res = await app('GET', `${fhir}/${path}`);
        expect(res.status).toBe(200);
        expect(JSON.stringify(res.body.entry ?? [])).not.toContain(id);
      }
      const counted = await app('GET', `${fhir}/${type}?_id=${id}&_summary=count`);
      expect(counted.body.total).toBe(0);
      // Nor changes or deletes it with write scopes.
      expect((await writer('DELETE', `${fhir}/${type}/${id}`)).status).toBe(404);
      // A clinician reads it.
      expect((await doctor('GET', `${fhir}/${type}/${id}`)).status).toBe(200);
    },
  );

  it('still reads records shared by every patient (Practitioner)', async () => {
    expect((await app('GET', `${fhir}/Practitioner/${ids.practitioner}`)).status).toBe(200);
  });
});
