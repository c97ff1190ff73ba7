import { buildPatient } from '../support/factories.js';
import { tokenFor } from '../support/auth.js';
import { authorizedHttp, http as plainHttp, type HttpFn, createResource } from '../support/http.js';
import { createTestApp, type TestApp } from '../support/test-app.js';

const observation = (extra: Record<string, unknown>) => ({
  resourceType: 'Observation',
  status: 'final',
  code: { coding: [{ system: 'http://loinc.org', code: '8867-4' }] },
  ...extra,
});

describe('compartment search (GET /fhir/Patient/{id}/{type})', () => {
  let testApp: TestApp;
  let fhir: string;
  let doctorToken: string;
  let http: HttpFn;
  const ids = { a: '', b: '', bySubject: [] as string[], byPerformer: '', ofB: '', glucose: '' };

  const create = (body: Record<string, unknown>) => createResource(http, fhir, body);
  const idsOf = (bundle: { entry?: { resource: { id: string } }[] }) =>
    (bundle.entry ?? []).map((entry) => entry.resource.id).sort();

  beforeAll(async () => {
    testApp = await createTestApp();
    fhir = `${testApp.url}/fhir`;
    doctorToken = await tokenFor(testApp, 'doctor');
    http = authorizedHttp(doctorToken);
    ids.a = await create(buildPatient());
    ids.b = await create(buildPatient());
    for (let i = 0; i < 3; i++) {
      ids.bySubject.push(await create(observation({ subject: { reference: `Patient/${ids.a}` } })));
    }
    ids.glucose = await create(
      observation({
        subject: { reference: `Patient/${ids.a}` },
        code: { coding: [{ system: 'http://loinc.org', code: '2339-0' }] },
      }),
    );
    // In A's compartment through performer, one of the compartment's parameters for Observation.
    ids.byPerformer = await create(
      observation({
        subject: { reference: `Patient/${ids.b}` },
        performer: [{ reference: `Patient/${ids.a}` }],
      }),
    );
    ids.ofB = await create(observation({ subject: { reference: `Patient/${ids.b}` } }));
  });

  afterAll(async () => {
    await testApp.close();
  });

  it("finds a type's resources in the patient's compartment, by every compartment parameter", async () => {
    const res = await http('GET', `${fhir}/Patient/${ids.a}/Observation`);
    expect(res.status).toBe(200);
    expect(res.body.type).toBe('searchset');
    expect(idsOf(res.body)).toEqual([...ids.bySubject, ids.glucose, ids.byPerformer].sort());
    const ofB = await http('GET', `${fhir}/Patient/${ids.b}/Observation`);
    expect(idsOf(ofB.body)).toEqual([ids.byPerformer, ids.ofB].sort());
    // The patient themself is in their compartment.
    const self = await http('GET', `${fhir}/Patient/${ids.a}/Patient`);
    expect(idsOf(self.body)).toEqual([ids.a]);
  });

  it('takes criteria and pages, with links back to the compartment', async () => {
    const glucose = await http('GET', `${fhir}/Patient/${ids.a}/Observation?code=2339-0`);
    expect(idsOf(glucose.body)).toEqual([ids.glucose]);

    const seen: string[] = [];
    let url: string | undefined = `${fhir}/Patient/${ids.a}/Observation?_count=2&_sort=_id`;
    while (url) {
      expect(url.startsWith(`${fhir}/Patient/${ids.a}/Observation?`)).toBe(true);
      const page: { status: number; body: any } = await http('GET', url);
      expect(page.status).toBe(200);
      seen.push(...idsOf(page.body));
      url = page.body.link.find((link: { relation: string }) => link.relation === 'next')?.url;
    }
    expect(seen.sort()).toEqual([...ids.bySubject, ids.glucose, ids.byPerformer].sort());

    const posted = await http('POST', `${fhir}/Patient/${ids.a}/Observation/_search`, {
      raw: 'code=8867-4&_count=2',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(posted.status).toBe(200);
    const next = posted.body.link.find((link: { relation: string }) => link.relation === 'next');
    expect(next.url).toMatch(new RegExp(`^${fhir}/Patient/${ids.a}/Observation\\?_state=`));
    expect(next.url).not.toContain('8867');
    const second = await http('GET', next.url);
    expect(idsOf(posted.body).length + idsOf(second.body).length).toBe(4);
  });

  it('refuses what is not a Patient compartment search of one member type', async () => {
    const cases: [string, string][] = [
      [
        `Patient/${ids.a}/Practitioner`,
        'Practitioner resources are not in the Patient compartment: search /Practitioner instead',
      ],
      [
        `Observation/${ids.ofB}/Observation`,
        'Compartment search is offered for the Patient compartment: /Patient/{id}/{type}',
      ],
    ];
    for (const [path, diagnostics] of cases) {
      const res = await http('GET', `${fhir}/${path}`);
      expect(res.status).toBe(400);
      expect(res.body.issue[0].diagnostics).toBe(diagnostics);
    }
    const unknown = await http('GET', `${fhir}/Patient/${ids.a}/NotAType`);
    expect(unknown.status).toBe(404);
    expect(unknown.body.issue[0].diagnostics).toBe('Unknown resource type NotAType');
    const everything = await http('GET', `${fhir}/Patient/${ids.a}/*`);
    expect(everything.status).toBe(400);
    expect(everything.body.issue[0].diagnostics).toBe(
      'Every type of a compartment at once is Patient/{id}/$everything; name one type here',
    );
  });

  it('leaves the other routes of a patient as they were', async () => {
    const history = await http('GET', `${fhir}/Patient/${ids.a}/_history`);
    expect(history.status).toBe(200);
    expect(history.body.type).toBe('history');
    const everything = await http('GET', `${fhir}/Patient/${ids.a}/$everything`);
    expect(everything.status).toBe(200);
    expect(everything.body.entry.length).toBeGreaterThanOrEqual(5);
    const vread = await http('GET', `${fhir}/Patient/${ids.a}/_history/1`);
    expect(vread.status).toBe(200);
    const metadata = await http('GET', `${fhir}/metadata`);
    expect(metadata.body.rest[0].compartment).toEqual([
      'http://hl7.org/fhir/CompartmentDefinition/patient',
    ]);
  });

  it("gives a patient-scoped token nothing of another patient's compartment", async () => {
    const exchanged = await plainHttp('POST', `${testApp.url}/auth/token/scoped`, {
      body: { scope: 'patient/*.rs', patient: ids.b },
      headers: { authorization: `Bearer ${doctorToken}`, 'content-type': 'application/json' },
    });
    expect(exchanged.status).toBe(200);
    const asB = authorizedHttp(exchanged.body.access_token as string);
    // A's compartment holds one Observation of B's (performer): that one only.
    const res = await asB('GET', `${fhir}/Patient/${ids.a}/Observation`);
    expect(res.status).toBe(200);
    expect(idsOf(res.body)).toEqual([ids.byPerformer]);
    const role = authorizedHttp(await tokenFor(testApp, 'billing'));
    expect((await role('GET', `${fhir}/Patient/${ids.a}/Observation`)).status).toBe(403);
  });

  it('refuses a relative reference the index and the access check would read apart', async () => {
    // The index read Patient/a/_history/Patient/b as a, the access check as b: a patient token
    // for b was shown it and $everything counted it for a; `_history/` and `1_a` only for a.
    const odd = [
      `Patient/${ids.a}/_history/`,
      `Patient/${ids.a}/_history/1_a`,
      `Patient/${ids.a}/_history/Patient/${ids.b}`,
      `Patient/${ids.a}/`,
    ];
    for (const reference of odd) {
      const res = await http('POST', `${fhir}/Observation`, {
        body: observation({ subject: { reference } }),
      });
      expect(res.status).toBe(400);
      expect(res.body.issue[0].expression).toEqual(['Observation.subject.reference']);
      expect(JSON.stringify(res.body)).not.toContain(ids.a);
    }
    // A version, contained and other URIs are references still.
    for (const reference of [`Patient/${ids.a}/_history/1`, 'urn:oid:1.2.3', '#p']) {
      const res = await http('POST', `${fhir}/Observation`, {
        body: observation({
          subject: { reference },
          ...(reference === '#p' ? { contained: [{ resourceType: 'Patient', id: 'p' }] } : {}),
        }),
      });
      expect(res.status).toBe(201);
    }
  });
});
