import { randomUUID } from 'node:crypto';
import { DataSource } from 'typeorm';
import { buildPatient } from '../support/factories.js';
import { tokenFor } from '../support/auth.js';
import { withEnv } from '../support/env.js';
import { authorizedHttp, http as plainHttp, type HttpFn } from '../support/http.js';
import { createTestApp, type TestApp } from '../support/test-app.js';
import { queriesWhere } from '../support/queries.js';

const RESTRICTED = {
  system: 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality',
  code: 'R',
};

describe('cascading delete (_cascade=delete)', () => {
  let testApp: TestApp;
  let fhir: string;
  let doctorToken: string;
  let http: HttpFn;
  let restoreEnv: () => void;

  beforeAll(async () => {
    restoreEnv = withEnv({ FHIR_CASCADE_MAX: '6' });
    testApp = await createTestApp();
    fhir = `${testApp.url}/fhir`;
    doctorToken = await tokenFor(testApp, 'doctor');
    http = authorizedHttp(doctorToken);
  });

  afterAll(async () => {
    await testApp.close();
    restoreEnv();
  });

  const create = async (body: Record<string, unknown>): Promise<string> => {
    const res = await http('POST', `${fhir}/${String(body['resourceType'])}`, { body });
    expect(res.status).toBe(201);
    return `${String(body['resourceType'])}/${String(res.body.id)}`;
  };
  const observation = (extra: Record<string, unknown>) => ({
    resourceType: 'Observation',
    status: 'final',
    code: { text: 'Heart rate' },
    ...extra,
  });
  const status = async (reference: string) => (await http('GET', `${fhir}/${reference}`)).status;

  /**
   * A patient's record two levels deep: the Encounter and one Observation refer to the Patient;
   * the DiagnosticReport and the second Observation refer only to those.
   */
  const record = async () => {
    const patient = await create(buildPatient({ mrn: `MRN-${randomUUID()}` }));
    const encounter = await create({
      resourceType: 'Encounter',
      status: 'finished',
      class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' },
      subject: { reference: patient },
    });
    const result = await create(
      observation({ subject: { reference: patient }, encounter: { reference: encounter } }),
    );
    const report = await create({
      resourceType: 'DiagnosticReport',
      status: 'final',
      code: { text: 'Panel' },
      result: [{ reference: result }],
    });
    const note = await create(observation({ encounter: { reference: encounter } }));
    return { patient, encounter, result, report, note };
  };

  it('deletes the resource and everything that refers to it, directly or not, and says what', async () => {
    const { patient, ...referrers } = await record();
    const other = await create(buildPatient());
    const unrelated = await create(observation({ subject: { reference: other } }));

    expect((await http('DELETE', `${fhir}/${patient}`)).status).toBe(409);
    const res = await http('DELETE', `${fhir}/${patient}?_cascade=delete`);
    expect(res.status).toBe(200);
    expect(res.body.resourceType).toBe('OperationOutcome');
    expect(res.body.issue[0].diagnostics).toBe(
      `${patient} deleted, with 4 resources that referred to it, directly or through others: ` +
        '1 DiagnosticReport, 1 Encounter, 2 Observation',
    );
    for (const reference of [patient, ...Object.values(referrers)]) {
      expect(await status(reference)).toBe(410);
      const history = await http('GET', `${fhir}/${reference}/_history`);
      expect(history.body.entry[0].request.method).toBe('DELETE');
    }
    expect(await status(other)).toBe(200);
    expect(await status(unrelated)).toBe(200);

    // One audit event names every resource the request deleted.
    const auditor = authorizedHttp(await tokenFor(testApp, 'auditor'));
    const events = await auditor('GET', `${fhir}/AuditEvent?entity=${referrers.report}&action=D`);
    expect(events.body.entry).toHaveLength(1);
    const entities = (events.body.entry[0].resource.entity as { what?: { reference?: string } }[])
      .map((entity) => entity.what?.reference)
      .filter((reference) => reference !== undefined);
    expect(new Set(entities)).toEqual(new Set([patient, ...Object.values(referrers)]));
  });

  it('takes X-Cascade: delete, and a resource nothing refers to', async () => {
    const { patient } = await record();
    const res = await http('DELETE', `${fhir}/${patient}`, { headers: { 'x-cascade': 'delete' } });
    expect(res.status).toBe(200);
    expect(res.body.issue[0].diagnostics).toContain('with 4 resources');

    const alone = await create(buildPatient());
    const single = await http('DELETE', `${fhir}/${alone}?_cascade=delete`);
    expect(single.status).toBe(200);
    expect(single.body.issue[0].diagnostics).toBe(`${alone} deleted; no resource referred to it`);
    // Deleted already: nothing left to cascade to, and no error.
    const again = await http('DELETE', `${fhir}/${alone}?_cascade=delete`);
    expect(again.status).toBe(200);
  });

  it('refuses any other value of _cascade or X-Cascade, deleting nothing', async () => {
    const { patient } = await record();
    for (const [url, headers] of [
      [`${fhir}/${patient}?_cascade=yes`, {}],
      [`${fhir}/${patient}`, { 'x-cascade': 'all' }],
    ] as const) {
      const res = await http('DELETE', url, { headers });
      expect(res.status).toBe(400);
      expect(res.body.issue[0].diagnostics).toBe('_cascade (or X-Cascade) takes one value: delete');
    }
    expect(await status(patient)).toBe(200);
  });

  it('cascades a conditional delete, with _cascade kept out of the criteria', async () => {
    const mrn = `MRN-${randomUUID()}`;
    const patient = await create(buildPatient({ mrn }));
    const result = await create(observation({ subject: { reference: patient } }));
    const identifier = encodeURIComponent(`urn:oid:1.2.36.146.595.217.0.1|${mrn}`);
    const res = await http('DELETE', `${fhir}/Patient?identifier=${identifier}&_cascade=delete`);
    expect(res.status).toBe(200);
    expect(res.body.issue[0].diagnostics).toBe(
      `${patient} deleted, with 1 resource that referred to it, directly or through others: 1 Observation`,
    );
    expect(await status(result)).toBe(410);
    // Nothing matches now: nothing to delete, as without _cascade.
    const none = await http('DELETE', `${fhir}/Patient?identifier=${identifier}&_cascade=delete`);
    expect(none.status).toBe(204);
  });

  it('cascades Bundle entries; a transaction that then fails rolls the cascade back', async () => {
    const first = await record();
    const ok = await http('POST', fhir, {
      body: {
        resourceType: 'Bundle',
        type: 'transaction',
        entry: [{ request: { method: 'DELETE', url: `${first.patient}?_cascade=delete` } }],
      },
    });
    expect(ok.status).toBe(200);
    expect(ok.body.entry[0].response.status).toBe('200 OK');
    expect(ok.body.entry[0].response.outcome.issue[0].diagnostics).toContain('with 4 resources');
    expect(await status(first.report)).toBe(410);

    const second = await record();
    const failed = await http('POST', fhir, {
      body: {
        resourceType: 'Bundle',
        type: 'transaction',
        entry: [
          { request: { method: 'DELETE', url: `${second.patient}?_cascade=delete` } },
          // Refers to the patient the first entry deletes: the whole transaction fails (409,
          // as the patient cannot be deleted while it is referred to).
          {
            resource: observation({ subject: { reference: second.patient } }),
            request: { method: 'POST', url: 'Observation' },
          },
        ],
      },
    });
    expect(failed.status).toBe(409);
    for (const reference of Object.values(second)) {
      expect(await status(reference)).toBe(200);
    }
  });

  it('refuses the whole cascade when one resource may not be deleted by this user', async () => {
    const { patient, result } = await record();
    // A restricted record refers to the patient: no role opens it without break-glass.
    const restricted = await create(
      observation({ subject: { reference: patient }, meta: { security: [RESTRICTED] } }),
    );
    const res = await http('DELETE', `${fhir}/${patient}?_cascade=delete`);
    expect(res.status).toBe(403);
    expect(res.body.issue[0].diagnostics).toBe(
      `Deleting ${patient} with _cascade=delete would also delete ${restricted}, which is ` +
        'refused: This record is restricted: it opens only through break-glass (POST /auth/break-glass) for each patient it is about',
    );
    for (const reference of [patient, result]) {
      expect(await status(reference)).toBe(200);
    }

    // A token scoped to Patients only may delete a Patient, but not its Observations.
    const exchanged = await plainHttp('POST', `${testApp.url}/auth/token/scoped`, {
      body: { scope: 'user/Patient.cruds' },
      headers: { authorization: `Bearer ${doctorToken}`, 'content-type': 'application/json' },
    });
    expect(exchanged.status).toBe(200);
    const patientsOnly = authorizedHttp(exchanged.body.access_token as string);
    const other = await record();
    const scoped = await patientsOnly('DELETE', `${fhir}/${other.patient}?_cascade=delete`);
    expect(scoped.status).toBe(403);
    expect(scoped.body.issue[0].diagnostics).toBe(
      `Deleting ${other.patient} with _cascade=delete would also delete Encounter resources ` +
        'that refer to it, which you may not search for and delete',
    );
    expect(await status(other.encounter)).toBe(200);

    // Delete rights without search on what refers to it: the cascade would list, by type and
    // count, records the token may not search for (until 2026-12-07 it did).
    const blind = await plainHttp('POST', `${testApp.url}/auth/token/scoped`, {
      body: {
        scope: 'user/Patient.cruds user/Encounter.d user/Observation.d user/DiagnosticReport.d',
      },
      headers: { authorization: `Bearer ${doctorToken}`, 'content-type': 'application/json' },
    });
    expect(blind.status).toBe(200);
    const third = await record();
    const unsearched = await authorizedHttp(blind.body.access_token as string)(
      'DELETE',
      `${fhir}/${third.patient}?_cascade=delete`,
    );
    expect(unsearched.status).toBe(403);
    expect(unsearched.body.issue[0].diagnostics).toMatch(
      /would also delete (Encounter|Observation|DiagnosticReport) resources that refer to it, which you may not search for and delete$/,
    );
    expect(await status(third.patient)).toBe(200);

    // A patient's own token may not reach into another patient's record that refers to theirs.
    const own = { patient: await create(buildPatient()), result: '' };
    own.result = await create(observation({ subject: { reference: own.patient } }));
    const elsewhere = await create(
      observation({
        subject: { reference: await create(buildPatient()) },
        focus: [{ reference: own.patient }],
      }),
    );
    const asPatient = await plainHttp('POST', `${testApp.url}/auth/token/scoped`, {
      body: { scope: 'patient/*.cruds', patient: own.patient.split('/')[1] },
      headers: { authorization: `Bearer ${doctorToken}`, 'content-type': 'application/json' },
    });
    expect(asPatient.status).toBe(200);
    const confined = await authorizedHttp(asPatient.body.access_token as string)(
      'DELETE',
      `${fhir}/${own.patient}?_cascade=delete`,
    );
    expect(confined.status).toBe(403);
    expect(confined.body.issue[0].diagnostics).toBe(
      `Deleting ${own.patient} with _cascade=delete would also delete Observation resources ` +
        "outside your patient's compartment",
    );
    expect(await status(elsewhere)).toBe(200);
    expect(await status(own.result)).toBe(200);
  });

  it("answers the target's own refusal (404, 412, 403) before anything that refers to it is looked at", async () => {
    expect((await http('DELETE', `${fhir}/Patient/${randomUUID()}?_cascade=delete`)).status).toBe(
      404,
    );

    // A stale If-Match on the target, and a referrer this user may not delete: the target's 412.
    const { patient, result } = await record();
    const restricted = await create(
      observation({ subject: { reference: patient }, meta: { security: [RESTRICTED] } }),
    );
    const [, id] = patient.split('/');
    const read = await http('GET', `${fhir}/${patient}`);
    const updated = await http('PUT', `${fhir}/${patient}`, {
      body: { ...read.body, active: false },
    });
    expect(updated.status).toBe(200);
    const stale = await http('DELETE', `${fhir}/Patient/${id}?_cascade=delete`, {
      headers: { 'if-match': 'W/"1"' },
    });
    expect(stale.status).toBe(412);
    expect(stale.body.issue[0].diagnostics).toBe('If-Match does not match the current version');
    for (const reference of [patient, result]) expect(await status(reference)).toBe(200);
    expect(restricted).toMatch(/^Observation\//);

    // A restricted target with more referrers than FHIR_CASCADE_MAX: the target's 403.
    const locked = await create({ ...buildPatient(), meta: { security: [RESTRICTED] } });
    for (let i = 0; i < 7; i++) await create(observation({ subject: { reference: locked } }));
    const refused = await http('DELETE', `${fhir}/${locked}?_cascade=delete`);
    expect(refused.status).toBe(403);
    expect(refused.body.issue[0].diagnostics).toMatch(/^This record is restricted/);
  });

  it('reads the target row twice: checked under its lock, then read again under it to delete it', async () => {
    const db = testApp.app.get(DataSource);
    const patient = await create(buildPatient());
    const id = patient.split('/')[1]!;
    let res;
    // The target's row read by its key (resource_type, id): not its history, index, audit.
    const reads = await queriesWhere(
      db,
      (text, values) =>
        /^SELECT/.test(text) &&
        /FROM "?resource"? "?\w+"?\s+WHERE/.test(text) &&
        values.includes(id),
      async () => (res = await http('DELETE', `${fhir}/${patient}?_cascade=delete`)),
    );
    expect(res!.status).toBe(200);
    expect(reads.length).toBe(2);
  });

  it('refuses a cascade larger than FHIR_CASCADE_MAX, deleting nothing', async () => {
    const { patient, ...referrers } = await record();
    // 4 referrers and the limit is 6: three more make 7.
    for (let i = 0; i < 3; i++) {
      await create(observation({ subject: { reference: patient } }));
    }
    const res = await http('DELETE', `${fhir}/${patient}?_cascade=delete`);
    expect(res.status).toBe(409);
    expect(res.body.issue[0].diagnostics).toBe(
      `${patient} has more than 6 resources that refer to it, directly or through others: ` +
        'too many for one cascading delete. Delete some of them first',
    );
    for (const reference of [patient, ...Object.values(referrers)]) {
      expect(await status(reference)).toBe(200);
    }
  });
});
