import { buildPatient } from '../support/factories.js';
import { scopedHttp, tokenFor } from '../support/auth.js';
import { authorizedHttp, type HttpFn, createResource } from '../support/http.js';
import { createTestApp, type TestApp } from '../support/test-app.js';

const group = (name: string, members: string[]) => ({
  resourceType: 'Group',
  type: 'person',
  actual: true,
  name,
  member: members.map((id) => ({ entity: { reference: `Patient/${id}` } })),
});

/**
 * R4 puts a Group in the compartment of each of its members, so that a patient's app read the
 * whole list of a cohort it was in: the other members, and what the cohort is (a clinic, a
 * trial). A patient-scoped token sees a Group only when its patient is the one member.
 */
describe('a patient-scoped token and the Groups its patient is a member of', () => {
  let testApp: TestApp;
  let fhir: string;
  let doctor: HttpFn;
  let app: HttpFn;
  const ids = { a: '', b: '', cohort: '', own: '' };

  const create = (body: Record<string, unknown>) => createResource(doctor, fhir, body);
  const listed = async (as: HttpFn, path: string): Promise<string[]> => {
    const res = await as('GET', `${fhir}/${path}`);
    expect(res.status).toBe(200);
    return ((res.body.entry ?? []) as { resource: { id: string } }[]).map((e) => e.resource.id);
  };
  const counted = async (as: HttpFn, path: string): Promise<number> => {
    const res = await as('GET', `${fhir}/${path}`);
    expect(res.status).toBe(200);
    return res.body.total as number;
  };

  beforeAll(async () => {
    testApp = await createTestApp();
    fhir = `${testApp.url}/fhir`;
    const doctorToken = await tokenFor(testApp, 'doctor');
    doctor = authorizedHttp(doctorToken);
    ids.a = await create(buildPatient());
    ids.b = await create(buildPatient());
    ids.cohort = await create(group('Infectious diseases clinic', [ids.a, ids.b]));
    ids.own = await create(group('Household', [ids.a]));
    app = await scopedHttp(testApp, doctorToken, 'patient/*.rs', ids.a);
  });

  afterAll(async () => {
    await testApp.close();
  });

  it('gets 404 for a Group that names another patient too, as for one it is not in', async () => {
    for (const path of [
      `Group/${ids.cohort}`,
      `Group/${ids.cohort}/_history`,
      `Group/${ids.cohort}/_history/1`,
    ]) {
      const res = await app('GET', `${fhir}/${path}`);
      expect({ path, status: res.status }).toEqual({ path, status: 404 });
      expect(res.text).not.toContain(ids.b);
    }
    expect((await app('GET', `${fhir}/Group/${ids.own}`)).status).toBe(200);
  });

  it('neither lists nor counts it in a search, a compartment search or $everything', async () => {
    expect(await listed(app, `Group?member=Patient/${ids.a}`)).toEqual([ids.own]);
    expect(await counted(app, `Group?member=Patient/${ids.a}&_summary=count`)).toBe(1);
    expect(await counted(app, `Group?_id=${ids.cohort}&_summary=count`)).toBe(0);
    expect(await listed(app, `Patient/${ids.a}/Group`)).toEqual([ids.own]);
    const everything = await app('GET', `${fhir}/Patient/${ids.a}/$everything`);
    expect(everything.status).toBe(200);
    expect(everything.text).not.toContain(ids.cohort);
    expect(everything.text).not.toContain(ids.b);
    const entries = (everything.body.entry as { search: { mode: string } }[]).filter(
      (entry) => entry.search.mode === 'match',
    );
    expect(everything.body.total).toBe(entries.length);
    const history = await app('GET', `${fhir}/Group/_history?_count=500`);
    expect(history.text).not.toContain(ids.cohort);
  });

  it('leaves a clinician every Group of the patient', async () => {
    expect((await listed(doctor, `Patient/${ids.a}/Group`)).sort()).toEqual(
      [ids.cohort, ids.own].sort(),
    );
    expect((await doctor('GET', `${fhir}/Group/${ids.cohort}`)).status).toBe(200);
  });
});
