import { randomUUID } from 'node:crypto';
import { DataSource } from 'typeorm';
import { buildPatient, heartRateObservation } from '../support/factories.js';
import { scopedHttp, tokenFor } from '../support/auth.js';
import { authorizedHttp, type HttpFn, type HttpResult, createResource } from '../support/http.js';
import { queriesWhere } from '../support/queries.js';
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

  /**
   * Referential integrity checked a reference at commit without the caller's rights: a patient's
   * app that wrote `encounter: Encounter/<B's>` got 201 (and B's clinicians saw A's result on
   * B's encounter) where an id never stored got 400, which told the app that B's record exists.
   */
  describe('references to records the token may not read, as to records that do not exist', () => {
    const theirs = { encounter: '', observation: '', restricted: '', own: '', location: '' };
    const RESTRICTED = {
      system: 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality',
      code: 'R',
    };
    const encounter = (patient: string, extra: Record<string, unknown> = {}) => ({
      resourceType: 'Encounter',
      status: 'finished',
      class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' },
      subject: { reference: `Patient/${patient}` },
      ...extra,
    });
    const observationOfA = (extra: Record<string, unknown> = {}) => ({
      ...heartRateObservation(ids.a),
      ...extra,
    });
    /** The answer's diagnostics with the target's id made a placeholder. */
    const refusal = (res: HttpResult, id: string) => ({
      status: res.status,
      diagnostics: String(res.body?.issue?.[0]?.diagnostics).replaceAll(id, '<id>'),
    });

    beforeAll(async () => {
      theirs.location = await create({ resourceType: 'Location', name: 'Ward 4' });
      theirs.encounter = await create(encounter(ids.b));
      theirs.observation = await create(heartRateObservation(ids.b));
      theirs.restricted = await create(encounter(ids.a, { meta: { security: [RESTRICTED] } }));
      theirs.own = await create(
        encounter(ids.a, {
          location: [{ location: { reference: `Location/${theirs.location}` } }],
        }),
      );
    });

    it("answers a create naming another patient's or a restricted record as one never stored", async () => {
      const missing = randomUUID();
      const absent = refusal(
        await writer('POST', `${fhir}/Observation`, {
          body: observationOfA({ encounter: { reference: `Encounter/${missing}` } }),
        }),
        missing,
      );
      expect(absent.status).toBe(400);
      expect(absent.diagnostics).toContain('does not exist');
      for (const id of [theirs.encounter, theirs.restricted]) {
        const res = await writer('POST', `${fhir}/Observation`, {
          body: observationOfA({ encounter: { reference: `Encounter/${id}` } }),
        });
        expect(refusal(res, id)).toEqual(absent);
      }
      const member = await writer('POST', `${fhir}/Observation`, {
        body: observationOfA({ hasMember: [{ reference: `Observation/${theirs.observation}` }] }),
      });
      const unknownMember = await writer('POST', `${fhir}/Observation`, {
        body: observationOfA({ hasMember: [{ reference: `Observation/${missing}` }] }),
      });
      expect(refusal(member, theirs.observation)).toEqual(refusal(unknownMember, missing));
      expect(member.status).toBe(400);
      // Nothing was attached to B's encounter.
      const attached = await doctor('GET', `${fhir}/Observation?encounter=${theirs.encounter}`);
      expect(attached.body.total ?? attached.body.entry?.length ?? 0).toBe(0);
    });

    it('refuses them in updates, patches, conditional writes and Bundle entries', async () => {
      const id = await create(observationOfA());
      const current = (await writer('GET', `${fhir}/Observation/${id}`)).body;
      const theirEncounter = { reference: `Encounter/${theirs.encounter}` };
      const tag = { system: 'http://example.org/readings', value: randomUUID() };
      const writes: [string, string, Record<string, unknown>][] = [
        ['PUT', `Observation/${id}`, { body: { ...current, encounter: theirEncounter } }],
        [
          'PATCH',
          `Observation/${id}`,
          {
            body: [{ op: 'add', path: '/encounter', value: theirEncounter }],
            headers: { 'content-type': 'application/json-patch+json' },
          },
        ],
        [
          'POST',
          'Observation',
          {
            body: observationOfA({ encounter: theirEncounter, identifier: [tag] }),
            headers: { 'if-none-exist': `identifier=${tag.system}|${tag.value}` },
          },
        ],
        ['PUT', `Observation?_id=${id}`, { body: { ...current, encounter: theirEncounter } }],
      ];
      for (const [method, path, options] of writes) {
        const res = await writer(method, `${fhir}/${path}`, options);
        expect({ method, path, status: res.status }).toEqual({ method, path, status: 400 });
        expect(res.text).toContain('does not exist');
      }
      const bundle = await writer('POST', fhir, {
        body: {
          resourceType: 'Bundle',
          type: 'transaction',
          entry: [
            {
              fullUrl: `urn:uuid:${randomUUID()}`,
              resource: observationOfA({ encounter: theirEncounter }),
              request: { method: 'POST', url: 'Observation' },
            },
            {
              resource: { ...current, encounter: theirEncounter },
              request: { method: 'PUT', url: `Observation/${id}` },
            },
          ],
        },
      });
      expect(bundle.status).toBe(400);
      expect(bundle.text).toContain('does not exist');
      const batch = await writer('POST', fhir, {
        body: {
          resourceType: 'Bundle',
          type: 'batch',
          entry: [
            {
              resource: observationOfA({ encounter: theirEncounter }),
              request: { method: 'POST', url: 'Observation' },
            },
          ],
        },
      });
      expect(batch.body.entry[0].response.status).toMatch(/^400/);
      expect((await writer('GET', `${fhir}/Observation/${id}`)).body.meta.versionId).toBe('1');
    });

    it('answers another patient merged away as one never stored, not as merged (422)', async () => {
      const survivor = await create(buildPatient());
      const prior = await create(buildPatient());
      const retired = await doctor('PUT', `${fhir}/Patient/${prior}`, {
        body: {
          ...buildPatient(),
          id: prior,
          active: false,
          link: [{ other: { reference: `Patient/${survivor}` }, type: 'replaced-by' }],
        },
      });
      expect(retired.status).toBe(200);
      const missing = randomUUID();
      const focus = async (id: string) =>
        refusal(
          await writer('POST', `${fhir}/Observation`, {
            body: observationOfA({ focus: [{ reference: `Patient/${id}` }] }),
          }),
          id,
        );
      const absent = await focus(missing);
      expect(absent.status).toBe(400);
      expect(await focus(prior)).toEqual(absent);
      // A clinician is still told where the record went.
      const told = await doctor('POST', `${fhir}/Observation`, {
        body: observationOfA({ focus: [{ reference: `Patient/${prior}` }] }),
      });
      expect(told.status).toBe(422);
    });

    it('keeps references to its own records, to shared ones, and those a record had', async () => {
      const own = await writer('POST', `${fhir}/Observation`, {
        body: observationOfA({
          encounter: { reference: `Encounter/${theirs.own}` },
          performer: [{ reference: `Practitioner/${ids.practitioner}` }],
        }),
      });
      expect(own.status).toBe(201);
      const visit = await writer('POST', `${fhir}/Encounter`, {
        body: encounter(ids.a, {
          location: [{ location: { reference: `Location/${theirs.location}` } }],
          partOf: { reference: `Encounter/${theirs.own}` },
        }),
      });
      expect(visit.status).toBe(201);
      // A clinician filed A's result on B's encounter: the app may still edit the result.
      const filed = await create(
        observationOfA({ encounter: { reference: `Encounter/${theirs.encounter}` } }),
      );
      const current = (await writer('GET', `${fhir}/Observation/${filed}`)).body;
      const edited = await writer('PUT', `${fhir}/Observation/${filed}`, {
        body: { ...current, note: [{ text: 'Taken after a walk' }] },
      });
      expect(edited.status).toBe(200);
    });

    it("leaves a clinician's references as they were, at no statement more", async () => {
      const db = testApp.app.get(DataSource);
      const body = observationOfA({ encounter: { reference: `Encounter/${theirs.own}` } });
      const locks = (texts: string[]) => texts.filter((text) => text.includes('FOR KEY SHARE'));
      let doctorStatus = 0;
      const doctors = await queriesWhere(
        db,
        () => true,
        async () => {
          doctorStatus = (await doctor('POST', `${fhir}/Observation`, { body })).status;
        },
      );
      expect(doctorStatus).toBe(201);
      // One statement locks the patient (RetiredPatients), one the encounter; neither reads
      // what a clinician's write refers to beyond the patient.
      expect(locks(doctors)).toHaveLength(2);
      expect(locks(doctors).filter((text) => text.includes('r.content'))).toHaveLength(1);
      const across = await doctor('POST', `${fhir}/Observation`, {
        body: observationOfA({ encounter: { reference: `Encounter/${theirs.encounter}` } }),
      });
      expect(across.status).toBe(201);
      // The app's write judges the encounter in the statement that locks it.
      let appStatus = 0;
      const apps = await queriesWhere(
        db,
        () => true,
        async () => {
          appStatus = (await writer('POST', `${fhir}/Observation`, { body })).status;
        },
      );
      expect(appStatus).toBe(201);
      expect(locks(apps)).toHaveLength(2);
      expect(apps).toHaveLength(doctors.length);
    });
  });
});
