import { randomUUID } from 'node:crypto';
import { SignJWT } from 'jose';
import { DataSource } from 'typeorm';
import { SigningKeys } from '../../src/auth/signing-keys.js';
import { buildPatient } from '../support/factories.js';
import { UsersService } from '../../src/auth/users.service.js';
import {
  createUser,
  enableMfa,
  login,
  loginWithMfa,
  scopedHttp,
  tokenFor,
} from '../support/auth.js';
import { authorizedHttp, http as plainHttp, type HttpFn, createResource } from '../support/http.js';
import { BUILT, childEnv, runNode } from '../support/process.js';
import { withEnv } from '../support/env.js';
import { createTestApp, type TestApp } from '../support/test-app.js';

const RESTRICTED = {
  system: 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality',
  code: 'R',
};

function observation(patientId: string, extra: Record<string, unknown> = {}) {
  return {
    resourceType: 'Observation',
    status: 'final',
    code: { coding: [{ system: 'http://loinc.org', code: '8867-4' }] },
    subject: { reference: `Patient/${patientId}` },
    valueQuantity: { value: 72, unit: '/min' },
    ...extra,
  };
}

describe('access by content: SMART scopes, patient compartment, restricted records, break-glass', () => {
  let testApp: TestApp;
  let fhir: string;
  let doctor: HttpFn;
  let doctorToken: string;
  const ids = {
    patientA: '',
    patientB: '',
    obsA: '',
    obsB: '',
    practitioner: '',
    obsPointingToB: '',
    obsOfBAboutA: '',
  };
  /** Before this suite's first write: its system history starts here. */
  const started = new Date(Date.now() - 1000).toISOString();

  /** Type/id of every version in the system history since the suite started. */
  async function systemHistory(as: HttpFn): Promise<string[]> {
    const res = await as('GET', `${fhir}/_history?_since=${started}&_count=1000`);
    expect(res.status).toBe(200);
    expect(res.body.type).toBe('history');
    return (res.body.entry as { fullUrl: string }[]).map((e) => e.fullUrl.slice(fhir.length + 1));
  }

  const create = (as: HttpFn, body: Record<string, unknown>) => createResource(as, fhir, body);

  const scoped = (token: string, scope: string, patient?: string) =>
    scopedHttp(testApp, token, scope, patient);

  beforeAll(async () => {
    // Subscriptions are accepted (never delivered: the ones here are off).
    const restore = withEnv({ SUBSCRIPTION_ENDPOINTS: 'http://127.0.0.1:9/hooks/' });
    try {
      testApp = await createTestApp();
    } finally {
      restore();
    }
    fhir = `${testApp.url}/fhir`;
    doctorToken = await tokenFor(testApp, 'doctor');
    doctor = authorizedHttp(doctorToken);
    ids.patientA = await create(doctor, buildPatient());
    ids.patientB = await create(doctor, buildPatient());
    ids.obsA = await create(doctor, observation(ids.patientA));
    ids.obsB = await create(doctor, observation(ids.patientB));
    // In A's compartment by subject, and in B's by performer: reading it must not open B.
    ids.obsPointingToB = await create(
      doctor,
      observation(ids.patientA, { performer: [{ reference: `Patient/${ids.patientB}` }] }),
    );
    // In B's compartment only, pointing at A through `focus`.
    ids.obsOfBAboutA = await create(
      doctor,
      observation(ids.patientB, { focus: [{ reference: `Patient/${ids.patientA}` }] }),
    );
    ids.practitioner = await create(doctor, {
      resourceType: 'Practitioner',
      name: [{ family: 'Attending' }],
    });
  });

  afterAll(async () => {
    await testApp.close();
  });

  describe('SMART scopes', () => {
    it('narrow a token to the scoped types and interactions (intersection with the role)', async () => {
      const app = await scoped(doctorToken, 'user/Observation.rs');
      expect((await app('GET', `${fhir}/Observation/${ids.obsA}`)).status).toBe(200);
      expect((await app('GET', `${fhir}/Patient/${ids.patientA}`)).status).toBe(403);
      expect(
        (await app('POST', `${fhir}/Observation`, { body: observation(ids.patientA) })).status,
      ).toBe(403);
      // The role still bounds the scopes: billing with user/*.cruds cannot read an Observation.
      const billing = await scoped(await tokenFor(testApp, 'billing'), 'user/*.cruds');
      expect((await billing('GET', `${fhir}/Observation/${ids.obsA}`)).status).toBe(403);
      expect((await billing('GET', `${fhir}/Patient/${ids.patientA}`)).status).toBe(200);
    });

    it('let a create-only token read nothing through what a conditional create matches', async () => {
      // A conditional create searches, and answers a match with the stored resource: with
      // `_id=` as its criteria, a token that may only create read any record by its id.
      const creator = await scoped(doctorToken, 'user/Observation.c');
      expect((await creator('GET', `${fhir}/Observation/${ids.obsA}`)).status).toBe(403);
      const body = observation(ids.patientA);
      const direct = await creator('POST', `${fhir}/Observation`, {
        body,
        headers: { 'if-none-exist': `_id=${ids.obsA}` },
      });
      expect([direct.status, direct.body.issue?.[0]?.code]).toEqual([403, 'forbidden']);
      const bundled = await creator('POST', fhir, {
        body: {
          resourceType: 'Bundle',
          type: 'transaction',
          entry: [
            {
              resource: body,
              request: { method: 'POST', url: 'Observation', ifNoneExist: `_id=${ids.obsA}` },
            },
          ],
        },
      });
      expect([bundled.status, bundled.body.issue?.[0]?.code]).toEqual([403, 'forbidden']);
      expect(JSON.stringify([direct.body, bundled.body])).not.toContain(ids.patientA);
      // Creating stays its right.
      expect((await creator('POST', `${fhir}/Observation`, { body })).status).toBe(201);
    });

    it('let an update- or delete-only token test no criteria through conditional writes', async () => {
      // Conditional update, patch and delete search: 0, 1 or several matches answered apart
      // (201/200/412, 404/200/412, 204/204/412) told a token that may not search whether a
      // name, birth date or MRN is on file.
      const family = `Oracle${Date.now()}`;
      const target = buildPatient({ family });
      const targetId = await create(doctor, target);
      const criteria = `family=${family}&birthdate=${String(target['birthDate'])}`;
      const writer = await scoped(doctorToken, 'user/Patient.rud');
      expect((await writer('GET', `${fhir}/Patient?${criteria}`)).status).toBe(403);
      const patch = [{ op: 'replace', path: '/active', value: false }];
      const direct = [
        await writer('PUT', `${fhir}/Patient?${criteria}`, { body: buildPatient({ family }) }),
        await writer('PATCH', `${fhir}/Patient?${criteria}`, {
          body: patch,
          headers: { 'content-type': 'application/json-patch+json' },
        }),
        await writer('DELETE', `${fhir}/Patient?${criteria}`),
        await writer('DELETE', `${fhir}/Patient?${criteria}&_cascade=delete`),
      ];
      const binary = {
        resourceType: 'Binary',
        contentType: 'application/json-patch+json',
        data: Buffer.from(JSON.stringify(patch)).toString('base64'),
      };
      const entries = [
        {
          resource: buildPatient({ family }),
          request: { method: 'PUT', url: `Patient?${criteria}` },
        },
        { resource: binary, request: { method: 'PATCH', url: `Patient?${criteria}` } },
        { request: { method: 'DELETE', url: `Patient?${criteria}` } },
      ];
      const bundled = [];
      for (const entry of entries) {
        const transaction = await writer('POST', fhir, {
          body: { resourceType: 'Bundle', type: 'transaction', entry: [entry] },
        });
        bundled.push(transaction);
      }
      const batch = await writer('POST', fhir, {
        body: { resourceType: 'Bundle', type: 'batch', entry: entries },
      });
      expect(batch.status).toBe(200);
      const answers = [
        ...[...direct, ...bundled].map((res) => [res.status, res.body?.issue?.[0]?.code]),
        ...batch.body.entry.map((e: any) => [
          Number.parseInt(e.response.status, 10),
          e.response.outcome?.issue?.[0]?.code,
        ]),
      ];
      expect(answers).toEqual(Array(10).fill([403, 'forbidden']));
      // Nothing was changed either.
      const stored = await doctor('GET', `${fhir}/Patient/${targetId}`);
      expect([stored.status, stored.body.meta.versionId, stored.body.active]).toEqual([
        200,
        '1',
        true,
      ]);
      // With the right to search, the same requests are conditional writes again.
      const searcher = await scoped(doctorToken, 'user/Patient.rus');
      const updated = await searcher('PATCH', `${fhir}/Patient?${criteria}`, {
        body: patch,
        headers: { 'content-type': 'application/json-patch+json' },
      });
      expect([updated.status, updated.body.id, updated.body.active]).toEqual([
        200,
        targetId,
        false,
      ]);
    });

    it('let an update-only token create nothing through an update-as-create', async () => {
      // FHIR's update creates a resource that is not there: without `c`, a `user/Patient.us`
      // token created Patients by PUT Patient/{new id}, or a conditional update matching none.
      const updater = await scoped(doctorToken, 'user/Patient.us');
      expect((await updater('POST', `${fhir}/Patient`, { body: buildPatient() })).status).toBe(403);
      const newId = `created-by-put-${Date.now()}`;
      const family = `Uncreated${Date.now()}`;
      const answers = [
        await updater('PUT', `${fhir}/Patient/${newId}`, {
          body: { ...buildPatient(), id: newId },
        }),
        await updater('PUT', `${fhir}/Patient?family=${family}`, {
          body: buildPatient({ family }),
        }),
      ];
      const bundled = await updater('POST', fhir, {
        body: {
          resourceType: 'Bundle',
          type: 'transaction',
          entry: [
            {
              resource: buildPatient({ family }),
              request: { method: 'PUT', url: `Patient?family=${family}` },
            },
          ],
        },
      });
      expect([...answers, bundled].map((res) => [res.status, res.body.issue?.[0]?.code])).toEqual(
        Array(3).fill([403, 'forbidden']),
      );
      expect((await doctor('GET', `${fhir}/Patient/${newId}`)).status).toBe(404);
      const found = await doctor('GET', `${fhir}/Patient?family=${family}`);
      expect(found.body.entry ?? []).toEqual([]);
      // Nor brings back a deleted one, which a re-creation does (answered 201 as a create).
      const deleted = await create(doctor, buildPatient());
      expect((await doctor('DELETE', `${fhir}/Patient/${deleted}`)).status).toBe(204);
      const recreated = await updater('PUT', `${fhir}/Patient/${deleted}`, {
        body: { ...buildPatient(), id: deleted },
      });
      expect([recreated.status, recreated.body.issue?.[0]?.code]).toEqual([403, 'forbidden']);
      expect((await doctor('GET', `${fhir}/Patient/${deleted}`)).status).toBe(410);
      // Updating what exists stays its right.
      const existing = await create(doctor, buildPatient());
      const updated = await updater('PUT', `${fhir}/Patient/${existing}`, {
        body: { ...buildPatient(), id: existing },
      });
      expect(updated.status).toBe(200);
    });

    it('let an update-only token read nothing through what a patch tests or answers', async () => {
      // A patch is applied to the stored resource: its `test` operation compared a guess with
      // a value, and its answer was the whole patched record, to a token that may not read.
      const targetId = await create(doctor, buildPatient({ birthDate: '1961-03-14' }));
      const updater = await scoped(doctorToken, 'user/Patient.u');
      expect((await updater('GET', `${fhir}/Patient/${targetId}`)).status).toBe(403);
      const guess = (birthDate: string) => [
        { op: 'test', path: '/birthDate', value: birthDate },
        { op: 'replace', path: '/active', value: true },
      ];
      const json = { 'content-type': 'application/json-patch+json' };
      const direct = [
        await updater('PATCH', `${fhir}/Patient/${targetId}`, {
          body: guess('1961-03-14'),
          headers: json,
        }),
        await updater('PATCH', `${fhir}/Patient/${targetId}`, {
          body: guess('1961-03-15'),
          headers: json,
        }),
      ];
      const bundled = await updater('POST', fhir, {
        body: {
          resourceType: 'Bundle',
          type: 'batch',
          entry: [
            {
              resource: {
                resourceType: 'Binary',
                contentType: 'application/json-patch+json',
                data: Buffer.from(JSON.stringify(guess('1961-03-14'))).toString('base64'),
              },
              request: { method: 'PATCH', url: `Patient/${targetId}` },
            },
          ],
        },
      });
      expect([
        ...direct.map((res) => [res.status, res.body?.issue?.[0]?.code]),
        [
          Number.parseInt(bundled.body.entry[0].response.status, 10),
          bundled.body.entry[0].response.outcome?.issue?.[0]?.code,
        ],
      ]).toEqual(Array(3).fill([403, 'forbidden']));
      expect(JSON.stringify([...direct.map((res) => res.body), bundled.body])).not.toContain(
        '1961',
      );
      // Updating by PUT stays its right, and patching is a reader's too.
      const put = await updater('PUT', `${fhir}/Patient/${targetId}`, {
        body: { ...buildPatient(), id: targetId },
      });
      expect(put.status).toBe(200);
      const reader = await scoped(doctorToken, 'user/Patient.ru');
      const patched = await reader('PATCH', `${fhir}/Patient/${targetId}`, {
        body: [{ op: 'replace', path: '/active', value: false }],
        headers: json,
      });
      expect([patched.status, patched.body.active]).toEqual([200, false]);
    });

    it('bound what a search reaches through _has, chains, _include and _revinclude too', async () => {
      // Billing may read Patients, not Observations: no search may show or test one.
      const billing = authorizedHttp(await tokenFor(testApp, 'billing'));
      const refused: [string, string][] = [
        [
          `Patient?_id=${ids.patientA}&_revinclude=Observation:subject`,
          '_revinclude reaches Observation resources, which you may not read',
        ],
        [
          `Patient?_has:Observation:subject:status=final`,
          '_has:Observation reaches Observation resources, which you may not search',
        ],
        [
          `Account?subject.name=x`,
          'subject.name reaches HealthcareService resources, which you may not search',
        ],
        [
          // A target the parameter has (Patient:link:Observation is a 400 since 2026-12-06).
          `Account?_include=Account:subject:Device`,
          '_include reaches Device resources, which you may not read',
        ],
      ];
      for (const [query, said] of refused) {
        const res = await billing('GET', `${fhir}/${query}`);
        expect({ query, status: res.status }).toEqual({ query, status: 403 });
        expect(res.body.issue[0].diagnostics).toBe(`Access denied: ${said}`);
      }
      // Naming a type billing may search is fine.
      expect((await billing('GET', `${fhir}/Account?subject:Patient.name=x`)).status).toBe(200);
      // A reference that may point to several types brings only those the caller may read.
      const app = await scoped(doctorToken, 'user/Observation.rs');
      const included = await app(
        'GET',
        `${fhir}/Observation?_id=${ids.obsA}&_include=Observation:subject`,
      );
      expect(included.status).toBe(200);
      const modes = included.body.entry.map((e: any) => e.search.mode);
      expect(modes).toEqual(['match', 'outcome']);
      expect(included.body.entry[1].resource.issue[0].diagnostics).toBe(
        'Included resources of a type you may not read were left out: Patient',
      );
      // _revinclude lists what refers to the matches, as `Observation?subject=…` would: with
      // `r` alone on Observation (no search), it listed the patient's Observations.
      const reader = await scoped(doctorToken, 'user/Patient.rs user/Observation.r');
      const revincluded = await reader(
        'GET',
        `${fhir}/Patient?_id=${ids.patientA}&_revinclude=Observation:subject`,
      );
      expect([revincluded.status, revincluded.body.issue?.[0]?.diagnostics]).toEqual([
        403,
        'Access denied: _revinclude reaches Observation resources, which you may not search',
      ]);
      const searcher = await scoped(doctorToken, 'user/Patient.rs user/Observation.rs');
      const listed = await searcher(
        'GET',
        `${fhir}/Patient?_id=${ids.patientA}&_revinclude=Observation:subject`,
      );
      expect(listed.body.entry.map((e: any) => e.resource.id)).toContain(ids.obsA);
    });

    it('never outlive the token they were exchanged for', async () => {
      const [, payload] = doctorToken.split('.');
      const claims = JSON.parse(Buffer.from(payload!, 'base64url').toString('utf8'));
      const { kid, privateKey } = testApp.app.get(SigningKeys).current;
      const shortLived = await new SignJWT({ ...claims, exp: Math.floor(Date.now() / 1000) + 30 })
        .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid })
        .sign(privateKey);
      const res = await plainHttp('POST', `${testApp.url}/auth/token/scoped`, {
        body: { scope: 'user/Observation.rs' },
        headers: { authorization: `Bearer ${shortLived}`, 'content-type': 'application/json' },
      });
      expect(res.status).toBe(200);
      expect(res.body.expires_in).toBeLessThanOrEqual(30);
    });

    it('cannot be widened by exchanging a scoped token again, nor used for administration', async () => {
      const res = await plainHttp('POST', `${testApp.url}/auth/token/scoped`, {
        body: { scope: 'user/Observation.rs' },
        headers: {
          authorization: `Bearer ${doctorToken}`,
          'content-type': 'application/json',
        },
      });
      const again = await plainHttp('POST', `${testApp.url}/auth/token/scoped`, {
        body: { scope: 'user/*.cruds' },
        headers: {
          authorization: `Bearer ${res.body.access_token}`,
          'content-type': 'application/json',
        },
      });
      expect(again.status).toBe(403);
      const admin = await createUser(testApp, ['admin']);
      const secret = await enableMfa(testApp, admin);
      const { access_token: adminToken } = await loginWithMfa(testApp, admin, secret);
      expect((await authorizedHttp(adminToken)('GET', `${testApp.url}/admin/users`)).status).toBe(
        200,
      );
      const scopedAdmin = await scoped(adminToken, 'user/*.rs');
      expect((await scopedAdmin('GET', `${testApp.url}/admin/users`)).status).toBe(403);
    });

    it('name a stored Patient by id: an MRN in its place is refused, not put in the token', async () => {
      // The token's patient is in the scope of every audit row it makes, in plaintext.
      const exchange = (patient: string) =>
        plainHttp('POST', `${testApp.url}/auth/token/scoped`, {
          body: { scope: 'patient/*.rs', patient },
          headers: { authorization: `Bearer ${doctorToken}`, 'content-type': 'application/json' },
        });
      const mrn = await exchange('MRN-55501234');
      expect({ status: mrn.status, token: mrn.body.access_token }).toEqual({
        status: 404,
        token: undefined,
      });
      expect(mrn.body.issue[0].diagnostics).not.toContain('MRN-55501234');
      const deleted = await create(doctor, buildPatient());
      expect((await doctor('DELETE', `${fhir}/Patient/${deleted}`)).status).toBe(204);
      expect((await exchange(deleted)).status).toBe(404);
      expect((await exchange(ids.patientA)).status).toBe(200);
    });

    it('narrow the system history to the types both role and scopes may read', async () => {
      const typesOf = (entries: string[]) => new Set(entries.map((e) => e.split('/')[0]));
      const everything = await systemHistory(doctor);
      expect(everything).toEqual(
        expect.arrayContaining([`Patient/${ids.patientA}`, `Observation/${ids.obsB}`]),
      );
      const app = await scoped(doctorToken, 'user/Observation.rs');
      const observations = await systemHistory(app);
      expect(typesOf(observations)).toEqual(new Set(['Observation']));
      expect(observations).toContain(`Observation/${ids.obsA}`);
      const billing = await systemHistory(authorizedHttp(await tokenFor(testApp, 'billing')));
      expect(billing).toContain(`Patient/${ids.patientA}`);
      expect(typesOf(billing).has('Observation')).toBe(false);
      // Administrators read no records: no type's history is theirs.
      const admin = authorizedHttp(await tokenFor(testApp, 'admin'));
      expect((await admin('GET', `${fhir}/_history`)).status).toBe(403);
    });

    it('list a type or the system history only to a token that may search (s), as SMART says', async () => {
      // `r` reads a record by its id, with its own history; listing every record of a type is
      // a search (SMART v2: type and system history are `s`), and a `user/Observation.r` token
      // listed every patient's Observations through `Observation/_history`.
      const reader = await scoped(doctorToken, 'user/Observation.r');
      expect((await reader('GET', `${fhir}/Observation?_id=${ids.obsA}`)).status).toBe(403);
      expect((await reader('GET', `${fhir}/Observation/${ids.obsA}`)).status).toBe(200);
      expect((await reader('GET', `${fhir}/Observation/${ids.obsA}/_history`)).status).toBe(200);
      const typeHistory = await reader('GET', `${fhir}/Observation/_history`);
      const systemList = await reader('GET', `${fhir}/_history`);
      const bundled = await reader('POST', fhir, {
        body: {
          resourceType: 'Bundle',
          type: 'batch',
          entry: [{ request: { method: 'GET', url: 'Observation/_history' } }],
        },
      });
      expect([
        [typeHistory.status, typeHistory.body.issue?.[0]?.code],
        [systemList.status, systemList.body.issue?.[0]?.code],
        [
          Number.parseInt(bundled.body.entry[0].response.status, 10),
          bundled.body.entry[0].response.outcome?.issue?.[0]?.code,
        ],
      ]).toEqual(Array(3).fill([403, 'forbidden']));
      expect(JSON.stringify([typeHistory.body, systemList.body, bundled.body])).not.toContain(
        ids.obsB,
      );
      // The system history lists the types the token may search: Patient, not Observation.
      const searcher = await scoped(doctorToken, 'user/Observation.r user/Patient.rs');
      const listed = await systemHistory(searcher);
      expect(listed).toContain(`Patient/${ids.patientA}`);
      expect(new Set(listed.map((entry) => entry.split('/')[0]))).toEqual(new Set(['Patient']));
    });

    it("list a patient's records through $everything only of the types a token may search", async () => {
      // $everything lists a compartment, as `Patient/{id}/Observation` does, which needs `s`:
      // with `r` alone it listed every Observation of the patient.
      const typesIn = (res: { body: any }) =>
        new Set((res.body.entry ?? []).map((e: any) => e.resource.resourceType));
      const reader = await scoped(doctorToken, 'user/Patient.r user/Observation.r');
      expect((await reader('GET', `${fhir}/Patient/${ids.patientA}/Observation`)).status).toBe(403);
      const read = await reader('GET', `${fhir}/Patient/${ids.patientA}/$everything`);
      expect(read.status).toBe(200);
      expect(typesIn(read)).toEqual(new Set(['Patient']));
      expect(JSON.stringify(read.body)).not.toContain(ids.obsA);
      const searcher = await scoped(doctorToken, 'user/Patient.r user/Observation.rs');
      const listed = await searcher('GET', `${fhir}/Patient/${ids.patientA}/$everything`);
      expect(typesIn(listed)).toEqual(new Set(['Patient', 'Observation']));
    });
  });

  describe("a patient-scoped token (patient/*.rs with a patient) sees one patient's compartment", () => {
    let app: HttpFn;

    beforeAll(async () => {
      app = await scoped(doctorToken, 'patient/*.rs', ids.patientA);
    });

    it("reads its patient's records", async () => {
      expect((await app('GET', `${fhir}/Patient/${ids.patientA}`)).status).toBe(200);
      expect((await app('GET', `${fhir}/Observation/${ids.obsA}`)).status).toBe(200);
      expect((await app('GET', `${fhir}/Observation/${ids.obsA}/_history/1`)).status).toBe(200);
    });

    it("gets 404, not 403, for another patient's records (no IDOR, no existence leak)", async () => {
      for (const path of [
        `Observation/${ids.obsB}`,
        `Observation/${ids.obsB}/_history/1`,
        `Observation/${ids.obsB}/_history`,
        `Patient/${ids.patientB}`,
      ]) {
        const res = await app('GET', `${fhir}/${path}`);
        expect(res.status).toBe(404);
        expect(JSON.stringify(res.body)).not.toContain(ids.patientB);
        // A conditional read must not answer 304 "unchanged" before the access check.
        const conditional = await app('GET', `${fhir}/${path}`, {
          headers: { 'if-none-match': '*', 'if-modified-since': new Date().toUTCString() },
        });
        expect(conditional.status).toBe(404);
      }
    });

    it('finds nothing of another patient through search, _include, _revinclude, chains or _has', async () => {
      const matches = async (path: string): Promise<string[]> => {
        const res = await app('GET', `${fhir}/${path}`);
        expect(res.status).toBe(200);
        const entries = (res.body.entry ?? []) as { resource: { id: string } }[];
        return entries.map((e) => e.resource.id);
      };
      // B's data is there for an unconfined token: each probe below could leak it.
      expect(await matches(`Observation?_id=${ids.obsB}`)).toEqual([]);
      expect(await matches(`Observation?subject=Patient/${ids.patientB}`)).toEqual([]);
      expect(await matches(`Patient?_id=${ids.patientB}`)).toEqual([]);
      expect(
        await matches(`Observation?_id=${ids.obsPointingToB}&_include=Observation:performer`),
      ).toEqual([ids.obsPointingToB]);
      expect(await matches(`Patient?_id=${ids.patientA}&_revinclude=Observation:focus`)).toEqual([
        ids.patientA,
      ]);
      expect(await matches(`Observation?subject:Patient._id=${ids.patientB}`)).toEqual([]);
      expect(await matches(`Patient?_has:Observation:subject:_id=${ids.obsB}`)).toEqual([]);
      // B's Observation names A by `focus`, outside the compartment: it tells A's token nothing.
      expect(await matches(`Patient?_has:Observation:focus:_id=${ids.obsOfBAboutA}`)).toEqual([]);
      expect(await matches(`Observation?focus:Patient._id=${ids.patientA}`)).toEqual([]);
      // Control: the unconfined doctor sees all of it.
      const control = async (path: string): Promise<number> =>
        ((await doctor('GET', `${fhir}/${path}`)).body.entry as unknown[]).length;
      expect(
        await control(`Observation?_id=${ids.obsPointingToB}&_include=Observation:performer`),
      ).toBe(2);
      expect(await control(`Patient?_id=${ids.patientA}&_revinclude=Observation:focus`)).toBe(2);
      expect(await control(`Patient?_has:Observation:subject:_id=${ids.obsB}`)).toBe(1);
      expect(await control(`Patient?_has:Observation:focus:_id=${ids.obsOfBAboutA}`)).toBe(1);
    });

    it("keeps another patient's Device out: R4's compartment leaves it out, yet it is theirs", async () => {
      // US Core's implantable device: its patient, its UDI (a serial number, HIPAA's identifier).
      const device = (patient: string) => ({
        resourceType: 'Device',
        patient: { reference: `Patient/${patient}` },
        udiCarrier: [{ deviceIdentifier: '09504000059118', carrierHRF: '(01)09504000059118' }],
        type: { coding: [{ system: 'http://snomed.info/sct', code: '14106009' }] },
      });
      const deviceA = await create(doctor, device(ids.patientA));
      const deviceB = await create(doctor, device(ids.patientB));
      const listed = async (as: HttpFn, path: string): Promise<string[]> => {
        const res = await as('GET', `${fhir}/${path}`);
        expect(res.status).toBe(200);
        return ((res.body.entry ?? []) as { resource: { id: string } }[]).map((e) => e.resource.id);
      };
      expect((await app('GET', `${fhir}/Device/${deviceB}`)).status).toBe(404);
      expect((await app('GET', `${fhir}/Device/${deviceA}`)).status).toBe(200);
      expect(await listed(app, `Device?patient=${ids.patientB}`)).toEqual([]);
      expect(await listed(app, `Device?_id=${deviceA},${deviceB}`)).toEqual([deviceA]);
      expect(await listed(app, `Patient/${ids.patientA}/Device`)).toEqual([deviceA]);
      // Control: the unconfined doctor finds both.
      expect((await listed(doctor, `Device?_id=${deviceA},${deviceB}`)).sort()).toEqual(
        [deviceA, deviceB].sort(),
      );
    });

    it('keeps patient/ scopes to the patient when a user/ scope is granted beside them', async () => {
      const mixed = await scoped(
        doctorToken,
        'patient/Observation.rs user/Practitioner.rs',
        ids.patientA,
      );
      expect((await mixed('GET', `${fhir}/Observation/${ids.obsA}`)).status).toBe(200);
      expect((await mixed('GET', `${fhir}/Observation/${ids.obsB}`)).status).toBe(404);
      const listed = await mixed('GET', `${fhir}/Observation?_id=${ids.obsA},${ids.obsB}`);
      expect(
        ((listed.body.entry ?? []) as { resource: { id: string } }[]).map((e) => e.resource.id),
      ).toEqual([ids.obsA]);
      // What the user/ scope allows is not confined.
      expect((await mixed('GET', `${fhir}/Practitioner/${ids.practitioner}`)).status).toBe(200);
    });

    it("counts and follows, in a linked record's $everything, only what is in its compartment", async () => {
      // Another record of the same person (Patient.link), which R4 puts in the compartment of
      // the one it names: the token reads it, not the results filed under it.
      const mine = await create(doctor, buildPatient());
      const linked = await create(doctor, {
        ...buildPatient(),
        link: [{ other: { reference: `Patient/${mine}` }, type: 'seealso' }],
      });
      const oncologist = await create(doctor, {
        resourceType: 'Practitioner',
        name: [{ family: 'Oncologist' }],
      });
      const filedUnderLinked = await create(
        doctor,
        observation(linked, { performer: [{ reference: `Practitioner/${oncologist}` }] }),
      );
      // In both compartments: the linked record's, and by performer the token's.
      const inBoth = await create(
        doctor,
        observation(linked, { performer: [{ reference: `Patient/${mine}` }] }),
      );
      const everything = async (as: HttpFn) => {
        const res = await as('GET', `${fhir}/Patient/${linked}/$everything`);
        expect(res.status).toBe(200);
        const entries = (res.body.entry ?? []) as {
          resource: { resourceType: string; id: string };
        }[];
        return {
          total: res.body.total as number,
          listed: entries.map((e) => `${e.resource.resourceType}/${e.resource.id}`).sort(),
        };
      };
      // The doctor's: every record filed under it, and the oncologist a result names.
      const whole = await everything(doctor);
      expect(whole.listed).toEqual(
        expect.arrayContaining([`Observation/${filedUnderLinked}`, `Practitioner/${oncologist}`]),
      );
      // The token's: its total counted the result it may not see (3, not 2), and the
      // oncologist that only one of them names was brought in, until 2026-12-07.
      const own = await scoped(doctorToken, 'patient/*.rs', mine);
      expect(await everything(own)).toEqual({
        total: 2,
        listed: [`Observation/${inBoth}`, `Patient/${linked}`].sort(),
      });
    });

    it("does not show another patient's record through a version filed to its patient by mistake", async () => {
      // B's result, filed to A, then refiled to B: A's versions of it hold B's data.
      const refiled = await create(doctor, observation(ids.patientA));
      const toB = await doctor('PUT', `${fhir}/Observation/${refiled}`, {
        body: { ...observation(ids.patientB), id: refiled },
      });
      expect(toB.status).toBe(200);
      expect((await doctor('GET', `${fhir}/Observation/${refiled}/_history/1`)).status).toBe(200);
      expect((await app('GET', `${fhir}/Observation/${refiled}`)).status).toBe(404);
      expect((await app('GET', `${fhir}/Observation/${refiled}/_history`)).status).toBe(404);
      // The version and the lists answered as the read does: 200 and listed until 2026-12-07.
      expect((await app('GET', `${fhir}/Observation/${refiled}/_history/1`)).status).toBe(404);
      for (const path of [`Observation/_history?_since=${started}`, `_history?_since=${started}`]) {
        const listed = await app('GET', `${fhir}/${path}&_count=1000`);
        expect(listed.status).toBe(200);
        expect(JSON.stringify(listed.body)).not.toContain(refiled);
      }
      const doctorListed = await doctor('GET', `${fhir}/Observation/_history?_since=${started}`);
      expect(JSON.stringify(doctorListed.body)).toContain(refiled);
      // B's token sees B's record and its history, without the version filed to A (the whole
      // history was a 404 until 2026-12-07, as if B's own result did not exist).
      const asB = await scoped(doctorToken, 'patient/*.rs', ids.patientB);
      expect((await asB('GET', `${fhir}/Observation/${refiled}`)).status).toBe(200);
      expect((await asB('GET', `${fhir}/Observation/${refiled}/_history/1`)).status).toBe(404);
      const history = await asB('GET', `${fhir}/Observation/${refiled}/_history`);
      expect(history.status).toBe(200);
      expect(
        (history.body.entry as { resource: { meta: { versionId: string } } }[]).map(
          (entry) => entry.resource.meta.versionId,
        ),
      ).toEqual(['2']);
      expect(JSON.stringify(history.body)).not.toContain(ids.patientA);
    });

    it("does not reveal another patient's deleted records (404, not 410)", async () => {
      const deleted = await create(doctor, observation(ids.patientB));
      expect((await doctor('DELETE', `${fhir}/Observation/${deleted}`)).status).toBe(204);
      expect((await doctor('GET', `${fhir}/Observation/${deleted}`)).status).toBe(410);
      expect((await app('GET', `${fhir}/Observation/${deleted}`)).status).toBe(404);
      expect((await app('GET', `${fhir}/Observation/${deleted}/_history/2`)).status).toBe(404);
      const listed = (await app('GET', `${fhir}/Observation/_history?_count=500`)).body;
      expect(JSON.stringify(listed)).not.toContain(deleted);
      // Nor through its history, a patch or a second deletion, as it would be for an id never
      // stored: they answered 200 with its versions' total, 410 and 204 until 2026-12-06.
      for (const count of [0, 1]) {
        const history = await app('GET', `${fhir}/Observation/${deleted}/_history?_count=${count}`);
        expect(history.status).toBe(404);
      }
      const writer = await scoped(doctorToken, 'patient/*.cruds', ids.patientA);
      const patch = {
        body: [{ op: 'replace', path: '/status', value: 'amended' }],
        headers: { 'content-type': 'application/json-patch+json' },
      };
      expect((await writer('PATCH', `${fhir}/Observation/${deleted}`, patch)).status).toBe(404);
      expect((await writer('DELETE', `${fhir}/Observation/${deleted}`)).status).toBe(404);
      // Nor written over with its own patient's data, which took that record's id and history.
      const taken = await writer('PUT', `${fhir}/Observation/${deleted}`, {
        body: { ...observation(ids.patientA), id: deleted },
      });
      expect(taken.status).toBe(404);
      // The doctor, who may see deletions, is told.
      expect((await doctor('PATCH', `${fhir}/Observation/${deleted}`, patch)).status).toBe(410);
      expect((await doctor('DELETE', `${fhir}/Observation/${deleted}`)).status).toBe(204);
    });

    it("leaves other patients' versions out of the system history", async () => {
      const seen = await systemHistory(app);
      expect(seen).toEqual(
        expect.arrayContaining([`Patient/${ids.patientA}`, `Observation/${ids.obsA}`]),
      );
      expect(seen).not.toContain(`Observation/${ids.obsB}`);
      expect(seen).not.toContain(`Patient/${ids.patientB}`);
    });

    it("leaves other patients' versions out of type history", async () => {
      const bundle = (await app('GET', `${fhir}/Observation/_history?_count=500`)).body;
      const seen = (bundle.entry as { resource?: { id: string } }[]).map((e) => e.resource?.id);
      expect(seen).toContain(ids.obsA);
      expect(seen).not.toContain(ids.obsB);
    });

    it('reads resources outside any patient compartment, and cannot write with read scopes', async () => {
      expect((await app('GET', `${fhir}/Practitioner/${ids.practitioner}`)).status).toBe(200);
      expect(
        (await app('POST', `${fhir}/Observation`, { body: observation(ids.patientA) })).status,
      ).toBe(403);
    });

    it("cannot write into another patient's compartment even with write scopes", async () => {
      const writer = await scoped(doctorToken, 'patient/*.cruds', ids.patientA);
      expect(
        (await writer('POST', `${fhir}/Observation`, { body: observation(ids.patientA) })).status,
      ).toBe(201);
      expect(
        (await writer('POST', `${fhir}/Observation`, { body: observation(ids.patientB) })).status,
      ).toBe(403);
      const moved = { ...observation(ids.patientB), id: ids.obsA };
      expect((await writer('PUT', `${fhir}/Observation/${ids.obsA}`, { body: moved })).status).toBe(
        403,
      );
      expect((await writer('DELETE', `${fhir}/Observation/${ids.obsB}`)).status).toBe(404);
      expect((await doctor('GET', `${fhir}/Observation/${ids.obsB}`)).status).toBe(200);
      // Naming A beside B (A as performer) is in A's compartment, and still writes into B's.
      const alsoA = observation(ids.patientB, {
        performer: [{ reference: `Patient/${ids.patientA}` }],
      });
      expect((await writer('POST', `${fhir}/Observation`, { body: alsoA })).status).toBe(403);
      const movedAlsoA = { ...alsoA, id: ids.obsA };
      expect(
        (await writer('PUT', `${fhir}/Observation/${ids.obsA}`, { body: movedAlsoA })).status,
      ).toBe(403);
      // A record that already named B (by performer) stays writable: the write adds no patient.
      const current = await writer('GET', `${fhir}/Observation/${ids.obsPointingToB}`);
      const edited = { ...current.body, status: 'amended' };
      expect(
        (await writer('PUT', `${fhir}/Observation/${ids.obsPointingToB}`, { body: edited })).status,
      ).toBe(200);
    });

    it('reads shared records and changes none, and keeps out of Subscriptions', async () => {
      const writer = await scoped(doctorToken, 'patient/*.cruds', ids.patientA);
      const practitioner = `${fhir}/Practitioner/${ids.practitioner}`;
      const shared = await writer('GET', practitioner);
      expect(shared.status).toBe(200);
      for (const [method, url, body] of [
        ['PUT', practitioner, { ...shared.body, name: [{ family: 'Renamed' }] }],
        ['POST', `${fhir}/Practitioner`, { resourceType: 'Practitioner' }],
        ['DELETE', practitioner, undefined],
      ] as const) {
        const res = await writer(method, url, body ? { body } : {});
        expect({ method, status: res.status }).toEqual({ method, status: 403 });
      }
      // A clinician's Subscription names other patients in its criteria, and its endpoint
      // gets their notifications: a patient's app neither sees nor rewrites it.
      const watch = {
        resourceType: 'Subscription',
        status: 'off',
        reason: 'Potassium results of patient B',
        criteria: `Observation?subject=Patient/${ids.patientB}`,
        channel: { type: 'rest-hook', endpoint: 'http://127.0.0.1:9/hooks/lab' },
      };
      const subscription = await create(doctor, watch);
      expect((await writer('GET', `${fhir}/Subscription/${subscription}`)).status).toBe(404);
      const listed = await writer('GET', `${fhir}/Subscription?_count=1000`);
      expect(listed.status).toBe(200);
      expect(listed.body.entry ?? []).toEqual([]);
      // Nor counted: the count was every clinician's until 2026-12-06.
      for (const query of ['_summary=count', '_total=accurate']) {
        const counted = await writer('GET', `${fhir}/Subscription?${query}`);
        expect({ query, total: counted.body.total }).toEqual({ query, total: 0 });
      }
      const patch = [
        { op: 'replace', path: '/channel/endpoint', value: 'http://127.0.0.1:9/hooks/x' },
      ];
      expect(
        (
          await writer('PATCH', `${fhir}/Subscription/${subscription}`, {
            body: patch,
            headers: { 'content-type': 'application/json-patch+json' },
          })
        ).status,
      ).toBe(404);
      expect((await writer('POST', `${fhir}/Subscription`, { body: watch })).status).toBe(403);
    });
  });

  describe('restricted records (meta.security R) and break-glass', () => {
    let restrictedPatient: string;
    let restrictedObs: string;

    beforeAll(async () => {
      restrictedPatient = await create(doctor, {
        ...buildPatient(),
        meta: { security: [RESTRICTED] },
      });
      restrictedObs = await create(
        doctor,
        observation(restrictedPatient, { meta: { security: [RESTRICTED] } }),
      );
    });

    it('refuses a change of meta.security from a role that may not label records (mass assignment)', async () => {
      const nurse = authorizedHttp(await tokenFor(testApp, 'nurse'));
      const labelled = observation(ids.patientA, { meta: { security: [RESTRICTED] } });
      expect((await nurse('POST', `${fhir}/Observation`, { body: labelled })).status).toBe(403);
      const current = (await nurse('GET', `${fhir}/Observation/${ids.obsA}`)).body;
      const relabelled = { ...current, meta: { ...current.meta, security: [RESTRICTED] } };
      expect(
        (await nurse('PUT', `${fhir}/Observation/${ids.obsA}`, { body: relabelled })).status,
      ).toBe(403);
      const patch = [{ op: 'add', path: '/meta/security', value: [RESTRICTED] }];
      const patched = await nurse('PATCH', `${fhir}/Observation/${ids.obsA}`, {
        raw: JSON.stringify(patch),
        headers: { 'content-type': 'application/json-patch+json' },
      });
      expect(patched.status).toBe(403);
      // The same nurse may still update the record when the labels stay as they are.
      expect(
        (await nurse('PUT', `${fhir}/Observation/${ids.obsA}`, { body: current })).status,
      ).toBe(200);
    });

    it('stay closed to every role without break-glass, and out of lists', async () => {
      const other = authorizedHttp(await tokenFor(testApp, 'doctor'));
      for (const path of [`Patient/${restrictedPatient}`, `Observation/${restrictedObs}`]) {
        const res = await other('GET', `${fhir}/${path}`);
        expect(res.status).toBe(403);
        expect(res.body.issue[0].diagnostics).toMatch(/break-glass/);
      }
      expect((await other('GET', `${fhir}/Observation/${restrictedObs}/_history/1`)).status).toBe(
        403,
      );
      expect((await other('DELETE', `${fhir}/Observation/${restrictedObs}`)).status).toBe(403);
      const listed = (await other('GET', `${fhir}/Observation/_history?_count=500`)).body;
      const seen = (listed.entry as { resource?: { id: string } }[]).map((e) => e.resource?.id);
      expect(seen).not.toContain(restrictedObs);
      // Nor does a search learn what one holds through _has or a chain.
      const count = async (path: string): Promise<number> =>
        (((await other('GET', `${fhir}/${path}`)).body.entry ?? []) as unknown[]).length;
      expect(await count(`Patient?_has:Observation:subject:_id=${restrictedObs}`)).toBe(0);
      expect(await count(`Observation?subject:Patient._id=${restrictedPatient}`)).toBe(0);
      const unrestricted = await create(doctor, observation(restrictedPatient));
      expect(await count(`Observation?_id=${unrestricted}&subject._id=${restrictedPatient}`)).toBe(
        0,
      );
      expect(await count(`Observation?_id=${unrestricted}`)).toBe(1);
    });

    it("keep a restricted record's id out of a Bundle's conditional references", async () => {
      const system = 'urn:oid:1.2.36.146.595.217.0.1';
      const mrn = `CR-${randomUUID()}`;
      const patient = await create(doctor, {
        ...buildPatient({ mrn }),
        meta: { security: [RESTRICTED] },
      });
      const reference = `Patient?identifier=${system}|${mrn}`;
      const bundle = (type: string) => ({
        resourceType: 'Bundle',
        type,
        entry: [
          {
            resource: { ...observation(patient), subject: { reference } },
            request: { method: 'POST', url: 'Observation' },
          },
        ],
      });
      // Refused as a conditional create matching it is: the record opens through break-glass.
      const other = authorizedHttp(await tokenFor(testApp, 'doctor'));
      const conditional = await other('POST', `${fhir}/Patient`, {
        body: buildPatient({ mrn }),
        headers: { 'if-none-exist': `identifier=${system}|${mrn}` },
      });
      expect(conditional.status).toBe(403);
      for (const type of ['transaction', 'batch']) {
        const res = await other('POST', fhir, { body: bundle(type) });
        expect({ type, text: res.text }).toEqual({
          type,
          text: expect.stringMatching(/break-glass/),
        });
        expect(res.text).not.toContain(patient);
        if (type === 'transaction') expect(res.status).toBe(403);
        else expect(res.body.entry[0].response.status).toMatch(/^403/);
      }
      const written = await doctor('GET', `${fhir}/Observation?subject=Patient/${patient}`);
      expect(written.body.total ?? (written.body.entry ?? []).length).toBe(0);
      // Through break-glass for that patient, the reference resolves to it.
      const user = await createUser(testApp, ['nurse']);
      const secret = await enableMfa(testApp, user);
      const nurse = authorizedHttp((await loginWithMfa(testApp, user, secret)).access_token);
      const granted = await nurse('POST', `${testApp.url}/auth/break-glass`, {
        body: { patient, reason: 'Unconscious in ED, results filed' },
        headers: { 'content-type': 'application/json' },
      });
      expect(granted.status).toBe(201);
      const opened = await nurse('POST', fhir, { body: bundle('transaction') });
      expect(opened.status).toBe(200);
      expect(opened.body.entry[0].resource.subject).toEqual({ reference: `Patient/${patient}` });
    });

    it('stay closed when labelled V (very restricted), stricter than R', async () => {
      const veryRestricted = { system: RESTRICTED.system, code: 'V' };
      const record = await create(
        doctor,
        observation(ids.patientA, { meta: { security: [veryRestricted] } }),
      );
      const nurse = authorizedHttp(await tokenFor(testApp, 'nurse'));
      const other = authorizedHttp(await tokenFor(testApp, 'doctor'));
      for (const as of [nurse, other]) {
        expect((await as('GET', `${fhir}/Observation/${record}`)).status).toBe(403);
        const found = await as('GET', `${fhir}/Observation?_id=${record}`);
        expect(found.body.entry ?? []).toHaveLength(0);
      }
      const everything = await other('GET', `${fhir}/Patient/${ids.patientA}/$everything`);
      const ids_ = ((everything.body.entry ?? []) as { resource: { id: string } }[]).map(
        (entry) => entry.resource.id,
      );
      expect(ids_).toContain(ids.obsA);
      expect(ids_).not.toContain(record);
    });

    it('stay closed when about no patient: no grant names one, so nothing opens them', async () => {
      // A grant opens one patient's records; a restricted record of no patient (a Practitioner
      // of a protected clinic) has no patient to break the glass for.
      const practitioner = await create(doctor, {
        resourceType: 'Practitioner',
        name: [{ family: 'Confidential' }],
        meta: { security: [RESTRICTED] },
      });
      const other = authorizedHttp(await tokenFor(testApp, 'doctor'));
      const res = await other('GET', `${fhir}/Practitioner/${practitioner}`);
      expect(res.status).toBe(403);
      expect(res.body.issue[0].diagnostics).toMatch(/break-glass/);
    });

    it('close the versions written before a record was restricted', async () => {
      const other = authorizedHttp(await tokenFor(testApp, 'doctor'));
      const later = await create(
        doctor,
        observation(ids.patientA, { valueQuantity: undefined, valueString: 'positive' }),
      );
      const v1 = (await doctor('GET', `${fhir}/Observation/${later}`)).body;
      const labelled = { ...v1, meta: { security: [RESTRICTED] } };
      expect((await doctor('PUT', `${fhir}/Observation/${later}`, { body: labelled })).status).toBe(
        200,
      );
      const closed = async (): Promise<void> => {
        expect((await other('GET', `${fhir}/Observation/${later}/_history/1`)).status).toBe(403);
        expect((await other('GET', `${fhir}/Observation/${later}/_history`)).status).toBe(403);
        const listed = (await other('GET', `${fhir}/Observation/_history?_count=1000`)).body;
        const seen = ((listed.entry ?? []) as { fullUrl: string }[]).map((e) => e.fullUrl);
        expect(seen.filter((url) => url.endsWith(`/Observation/${later}`))).toEqual([]);
      };
      await closed();
    });

    it('break-glass needs a recent MFA and opens one patient for a limited time, recorded for review', async () => {
      const user = await createUser(testApp, ['nurse']);
      const withoutMfa = authorizedHttp(await tokenFor(testApp, 'nurse'));
      const body = { patient: restrictedPatient, reason: 'Unconscious in ED, allergy check' };
      expect(
        (
          await withoutMfa('POST', `${testApp.url}/auth/break-glass`, {
            body,
            headers: { 'content-type': 'application/json' },
          })
        ).status,
      ).toBe(403);
      const billing = authorizedHttp(await tokenFor(testApp, 'billing'));
      expect(
        (
          await billing('POST', `${testApp.url}/auth/break-glass`, {
            body,
            headers: { 'content-type': 'application/json' },
          })
        ).status,
      ).toBe(403);

      const secret = await enableMfa(testApp, user);
      const nurse = authorizedHttp((await loginWithMfa(testApp, user, secret)).access_token);
      expect((await nurse('GET', `${fhir}/Observation/${restrictedObs}`)).status).toBe(403);
      const granted = await nurse('POST', `${testApp.url}/auth/break-glass`, {
        body,
        headers: { 'content-type': 'application/json' },
      });
      expect(granted.status).toBe(201);
      const minutes = (Date.parse(granted.body.expires_at) - Date.now()) / 60_000;
      expect(minutes).toBeGreaterThan(59);
      expect(minutes).toBeLessThanOrEqual(60);
      expect((await nurse('GET', `${fhir}/Observation/${restrictedObs}`)).status).toBe(200);
      expect((await nurse('GET', `${fhir}/Patient/${restrictedPatient}`)).status).toBe(200);

      // The grant is for that patient only.
      const elsewhere = await create(doctor, {
        ...buildPatient(),
        meta: { security: [RESTRICTED] },
      });
      expect((await nurse('GET', `${fhir}/Patient/${elsewhere}`)).status).toBe(403);
      // Nor for another patient's restricted record that names it (as performer): the grant
      // for one patient opened the other's until 2026-12-06.
      const othersRecord = await create(
        doctor,
        observation(ids.patientB, {
          meta: { security: [RESTRICTED] },
          performer: [{ reference: `Patient/${restrictedPatient}` }],
        }),
      );
      const refused = await nurse('GET', `${fhir}/Observation/${othersRecord}`);
      expect(refused.status).toBe(403);
      expect(refused.body.issue[0].diagnostics).toMatch(/for each patient it is about/);

      const report = await runNode(
        BUILT.cli,
        ['audit:break-glass-report'],
        childEnv({
          DATABASE_URL: process.env['DATABASE_URL']!,
          PHI_MASTER_KEY: process.env['PHI_MASTER_KEY']!,
          LOG_LEVEL: 'silent',
        }),
      );
      expect(report.code).toBe(0);
      const line = report.stdout.split('\n').find((row) => row.includes(user.username));
      expect(line?.split('\t')).toEqual([
        expect.any(String),
        user.username,
        restrictedPatient,
        granted.body.expires_at,
        '2',
        body.reason,
      ]);
    });

    it("opens through the user's own grant only, and no longer once the grant has expired", async () => {
      const user = await createUser(testApp, ['doctor']);
      const secret = await enableMfa(testApp, user);
      const holder = authorizedHttp((await loginWithMfa(testApp, user, secret)).access_token);
      const granted = await holder('POST', `${testApp.url}/auth/break-glass`, {
        body: { patient: restrictedPatient, reason: 'Admitted unconscious, medication history' },
        headers: { 'content-type': 'application/json' },
      });
      expect(granted.status).toBe(201);
      const record = `${fhir}/Observation/${restrictedObs}`;
      expect((await holder('GET', record)).status).toBe(200);
      // A colleague who broke no glass stays outside while the grant runs.
      const colleague = authorizedHttp(await tokenFor(testApp, 'doctor'));
      expect((await colleague('GET', record)).status).toBe(403);
      // The grant's time is over (as the clock would make it after BREAK_GLASS_MINUTES).
      await testApp.app
        .get(DataSource)
        .query(
          `UPDATE break_glass_grant SET expires_at = now() - interval '1 second' WHERE id = $1`,
          [granted.body.id],
        );
      const expired = await holder('GET', record);
      expect(expired.status).toBe(403);
      expect(expired.body.issue[0].diagnostics).toMatch(/break-glass/);
    });

    it("serves the person's own session only, not an app's token riding on their grant", async () => {
      const user = await createUser(testApp, ['doctor']);
      const secret = await enableMfa(testApp, user);
      const token = (await loginWithMfa(testApp, user, secret)).access_token;
      const holder = authorizedHttp(token);
      const granted = await holder('POST', `${testApp.url}/auth/break-glass`, {
        body: { patient: restrictedPatient, reason: 'Admitted unconscious, medication history' },
        headers: { 'content-type': 'application/json' },
      });
      expect(granted.status).toBe(201);
      const record = `${fhir}/Observation/${restrictedObs}`;
      expect((await holder('GET', record)).status).toBe(200);
      // A third-party app given the person's token narrowed to user/*.rs may not open
      // break-glass, so it reads nothing under the grant the person opened for themselves.
      const app = await scoped(token, 'user/*.rs');
      for (const path of [record, `${fhir}/Patient/${restrictedPatient}`, `${record}/_history/1`]) {
        const res = await app('GET', path);
        expect(res.status).toBe(403);
        expect(res.body.issue[0].diagnostics).toMatch(/break-glass/);
      }
      // Nor does an app that may write lift the restriction: it may not open the record to.
      const stored = (await holder('GET', record)).body;
      const writer = await scoped(token, 'user/*.cruds');
      const meta = { ...stored.meta };
      delete meta.security;
      const lifted = await writer('PUT', record, { body: { ...stored, meta } });
      expect(lifted.status).toBe(403);
      const unlabel = [{ op: 'remove', path: '/meta/security' }];
      const patched = await writer('PATCH', record, {
        raw: JSON.stringify(unlabel),
        headers: { 'content-type': 'application/json-patch+json' },
      });
      expect(patched.status).toBe(403);
      expect((await holder('GET', record)).body.meta.security).toEqual(stored.meta.security);
      const uses = await testApp.app
        .get(DataSource)
        .query('SELECT count(*)::int AS n FROM break_glass_use WHERE grant_id = $1', [
          granted.body.id,
        ]);
      expect(uses[0].n).toBe(3);
      // The person's own session still reads under the grant.
      expect((await holder('GET', record)).status).toBe(200);
    });

    it("ends with the account's sessions: disabled and enabled again, or its MFA reset", async () => {
      const user = await createUser(testApp, ['doctor']);
      const secret = await enableMfa(testApp, user);
      const users = testApp.app.get(UsersService);
      const record = `${fhir}/Observation/${restrictedObs}`;
      const breakGlass = async (as: HttpFn) => {
        const granted = await as('POST', `${testApp.url}/auth/break-glass`, {
          body: { patient: restrictedPatient, reason: 'Admitted unconscious, medication history' },
          headers: { 'content-type': 'application/json' },
        });
        expect(granted.status).toBe(201);
        expect((await as('GET', record)).status).toBe(200);
      };

      // Suspended and back (the offboarding undone): nothing of the old sessions comes back.
      await breakGlass(authorizedHttp((await loginWithMfa(testApp, user, secret)).access_token));
      await users.disable(user.username);
      await users.enable(user.username);
      // As if the account's last code were long past (the next day, say): its codes work again.
      await testApp.app
        .get(DataSource)
        .query('UPDATE app_user SET totp_last_step = NULL WHERE id = $1', [user.id]);
      const back = authorizedHttp((await loginWithMfa(testApp, user, secret)).access_token);
      expect((await back('GET', record)).status).toBe(403);

      // A lost or stolen MFA device: the grant it was opened with ends with it, and a sign-in
      // by password alone opens nothing restricted.
      await breakGlass(back);
      await users.resetMfa(user.username);
      const passwordOnly = authorizedHttp((await login(testApp, user)).access_token);
      const refused = await passwordOnly('GET', record);
      expect(refused.status).toBe(403);
      expect(refused.body.issue[0].diagnostics).toMatch(/break-glass/);

      // The privacy officer's report showed both grants open for the rest of their hour.
      const report = await runNode(
        BUILT.cli,
        ['audit:break-glass-report'],
        childEnv({
          DATABASE_URL: process.env['DATABASE_URL']!,
          PHI_MASTER_KEY: process.env['PHI_MASTER_KEY']!,
          LOG_LEVEL: 'silent',
        }),
      );
      expect(report.code).toBe(0);
      const ends = report.stdout
        .split('\n')
        .filter((row) => row.split('\t')[1] === user.username)
        .map((row) => row.split('\t')[3]);
      expect(ends).toEqual([
        "ended with the account's sessions",
        "ended with the account's sessions",
      ]);
    });
  });
});
