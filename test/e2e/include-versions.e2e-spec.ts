import { withEnv } from '../support/env.js';
import { buildPatient } from '../support/factories.js';
import { tokenFor } from '../support/auth.js';
import { authorizedHttp, type HttpFn } from '../support/http.js';
import { createTestApp, type TestApp } from '../support/test-app.js';

interface Entry {
  resource: { resourceType: string; id: string; meta: { versionId: string }; active?: boolean };
  search: { mode: string };
}

/**
 * `_include` of a version-specific reference: a Provenance names the version it signed
 * (`Patient/1/_history/1`), and the Bundle shows that version, not what the record became.
 */
describe('_include of a version-specific reference', () => {
  let testApp: TestApp;
  let fhir: string;
  let doctor: HttpFn;

  const provenance = (...targets: string[]) => ({
    resourceType: 'Provenance',
    target: targets.map((reference) => ({ reference })),
    recorded: '2026-01-01T00:00:00Z',
    agent: [{ who: { display: 'Dr. Signer' } }],
  });
  const create = async (body: Record<string, unknown>) => {
    const res = await doctor('POST', `${fhir}/${String(body['resourceType'])}`, { body });
    expect(res.status).toBe(201);
    return res.body as Record<string, unknown> & { id: string };
  };
  const included = async (provenanceId: string): Promise<Entry['resource'][]> => {
    const res = await doctor(
      'GET',
      `${fhir}/Provenance?_id=${provenanceId}&_include=Provenance:target`,
    );
    expect(res.status).toBe(200);
    return (res.body.entry as Entry[])
      .filter((entry) => entry.search.mode === 'include')
      .map((entry) => entry.resource);
  };

  let restoreEnv: () => void;

  beforeAll(async () => {
    // A reference to a version never written is refused on write since 2026-12-07; stored before
    // that (or with the check off, as here), it must still include nothing rather than fail.
    restoreEnv = withEnv({ FHIR_REFERENTIAL_INTEGRITY: 'false' });
    testApp = await createTestApp();
    fhir = `${testApp.url}/fhir`;
    doctor = authorizedHttp(await tokenFor(testApp, 'doctor'));
  });

  afterAll(async () => {
    await testApp.close();
    restoreEnv();
  });

  it('includes the version signed, not the current one', async () => {
    const patient = await create(buildPatient());
    const signed = await create(provenance(`Patient/${patient.id}/_history/1`));
    const current = await create(provenance(`Patient/${patient.id}`));
    const updated = await doctor('PUT', `${fhir}/Patient/${patient.id}`, {
      body: { ...patient, active: false },
    });
    expect(updated.status).toBe(200);
    const [version] = await included(signed.id);
    expect(version).toMatchObject({ id: patient.id, meta: { versionId: '1' } });
    expect(version!.active).not.toBe(false);
    expect((await included(current.id)).map((r) => r.meta.versionId)).toEqual(['2']);
  });

  it('leaves out a version that does not exist, and answers a version id past any with 200', async () => {
    const patient = await create(buildPatient());
    for (const vid of ['7', '3000000000', '99999999999', 'x']) {
      const signed = await create(provenance(`Patient/${patient.id}/_history/${vid}`));
      expect({ vid, included: await included(signed.id) }).toEqual({ vid, included: [] });
    }
  });
});
