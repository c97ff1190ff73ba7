import { buildPatient } from '../support/factories.js';
import { scopedHttp, tokenFor } from '../support/auth.js';
import { authorizedHttp, type HttpFn, createResource } from '../support/http.js';
import { createTestApp, type TestApp } from '../support/test-app.js';

const observation = (patient: string) => ({
  resourceType: 'Observation',
  status: 'final',
  code: { coding: [{ system: 'http://loinc.org', code: '8867-4' }] },
  subject: { reference: `Patient/${patient}` },
  valueQuantity: { value: 72, unit: '/min' },
});

/**
 * A patient-scoped token and the earlier versions of records: a version shows as the record is
 * now. A result filed under the wrong patient and moved to the right one, or deleted, is no
 * longer the first patient's to read through its old versions.
 */
describe('a patient-scoped token and the versions of a record no longer in its compartment', () => {
  let testApp: TestApp;
  let fhir: string;
  let doctor: HttpFn;
  let app: HttpFn;
  const ids = { a: '', b: '', kept: '', moved: '', deleted: '', movedThenDeleted: '' };
  const started = new Date(Date.now() - 1000).toISOString();

  const create = (body: Record<string, unknown>) => createResource(doctor, fhir, body);
  /** Files the Observation under patient B instead (a misfiled result, corrected). */
  const moveToB = async (id: string): Promise<void> => {
    const current = (await doctor('GET', `${fhir}/Observation/${id}`)).body;
    const body = { ...current, subject: { reference: `Patient/${ids.b}` } };
    expect((await doctor('PUT', `${fhir}/Observation/${id}`, { body })).status).toBe(200);
  };
  const remove = async (id: string): Promise<void> => {
    expect((await doctor('DELETE', `${fhir}/Observation/${id}`)).status).toBe(204);
  };
  const listedIds = async (path: string): Promise<string[]> => {
    const res = await app('GET', `${fhir}/${path}`);
    expect(res.status).toBe(200);
    return ((res.body.entry ?? []) as { fullUrl: string }[]).map((e) =>
      e.fullUrl.split('/').pop()!,
    );
  };

  beforeAll(async () => {
    testApp = await createTestApp();
    fhir = `${testApp.url}/fhir`;
    const doctorToken = await tokenFor(testApp, 'doctor');
    doctor = authorizedHttp(doctorToken);
    ids.a = await create(buildPatient());
    ids.b = await create(buildPatient());
    ids.kept = await create(observation(ids.a));
    ids.moved = await create(observation(ids.a));
    await moveToB(ids.moved);
    ids.deleted = await create(observation(ids.a));
    await remove(ids.deleted);
    ids.movedThenDeleted = await create(observation(ids.a));
    await moveToB(ids.movedThenDeleted);
    await remove(ids.movedThenDeleted);
    app = await scopedHttp(testApp, doctorToken, 'patient/*.rs', ids.a);
  });

  afterAll(async () => {
    await testApp.close();
  });

  it('reads the versions of a record still in its compartment', async () => {
    expect((await app('GET', `${fhir}/Observation/${ids.kept}/_history/1`)).status).toBe(200);
    expect(await listedIds(`Observation/_history?_since=${started}&_count=500`)).toContain(
      ids.kept,
    );
  });

  it('gets 404 for a version written before the record moved to another patient', async () => {
    // Read and history already answer 404: the record is B's now.
    expect((await app('GET', `${fhir}/Observation/${ids.moved}`)).status).toBe(404);
    expect((await app('GET', `${fhir}/Observation/${ids.moved}/_history`)).status).toBe(404);
    const version = await app('GET', `${fhir}/Observation/${ids.moved}/_history/1`);
    expect(version.status).toBe(404);
    expect(version.text).not.toContain(ids.a);
    const batch = await app('POST', fhir, {
      body: {
        resourceType: 'Bundle',
        type: 'batch',
        entry: [{ request: { method: 'GET', url: `Observation/${ids.moved}/_history/1` } }],
      },
    });
    expect(batch.status).toBe(200);
    expect(batch.body.entry[0].response.status).toMatch(/^404/);
  });

  it('gets 404 for a version of a deleted record, as for its read and its history', async () => {
    for (const id of [ids.deleted, ids.movedThenDeleted]) {
      expect((await app('GET', `${fhir}/Observation/${id}`)).status).toBe(404);
      expect((await app('GET', `${fhir}/Observation/${id}/_history`)).status).toBe(404);
      expect((await app('GET', `${fhir}/Observation/${id}/_history/1`)).status).toBe(404);
    }
  });

  it('lists no version of a record moved to another patient or deleted in type or system history', async () => {
    for (const path of [
      `Observation/_history?_since=${started}&_count=500`,
      `_history?_since=${started}&_count=500`,
    ]) {
      const listed = await listedIds(path);
      expect(listed).toContain(ids.kept);
      expect(listed).not.toContain(ids.moved);
      expect(listed).not.toContain(ids.deleted);
      expect(listed).not.toContain(ids.movedThenDeleted);
    }
  });

  it('leaves a clinician the whole history, old versions and deletions included', async () => {
    expect((await doctor('GET', `${fhir}/Observation/${ids.moved}/_history/1`)).status).toBe(200);
    expect((await doctor('GET', `${fhir}/Observation/${ids.deleted}/_history/1`)).status).toBe(200);
    const res = await doctor('GET', `${fhir}/Observation/_history?_since=${started}&_count=500`);
    const listed = (res.body.entry as { fullUrl: string }[]).map((e) => e.fullUrl.split('/').pop());
    expect(listed).toEqual(expect.arrayContaining([ids.moved, ids.deleted, ids.movedThenDeleted]));
  });
});
