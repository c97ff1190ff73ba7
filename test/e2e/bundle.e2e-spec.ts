import { randomUUID } from 'node:crypto';
import { jest } from '@jest/globals';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { FhirService } from '../../src/fhir/fhir.service.js';
import { buildPatient } from '../support/factories.js';
import { tokenFor } from '../support/auth.js';
import { withEnv } from '../support/env.js';
import { authorizedHttp, type HttpFn } from '../support/http.js';
import { createTestApp, type TestApp } from '../support/test-app.js';

const MRN = 'urn:oid:1.2.36.146.595.217.0.1';
const SAMPLES = fileURLToPath(new URL('../../../shared/fhir-samples/synthea/', import.meta.url));

interface ResponseEntry {
  resource?: { id: string; resourceType: string; [key: string]: unknown };
  response: { status: string; location?: string; outcome?: { issue: { diagnostics: string }[] } };
}

describe('batch and transaction Bundles (POST /fhir)', () => {
  let testApp: TestApp;
  let fhir: string;
  let http: HttpFn;
  let restoreEnv: () => void;

  beforeAll(async () => {
    // The largest Synthea bundle is 3 MB.
    restoreEnv = withEnv({ BODY_LIMIT: String(8 * 1024 * 1024) });
    testApp = await createTestApp();
    fhir = `${testApp.url}/fhir`;
    http = authorizedHttp(await tokenFor(testApp, 'doctor'));
  });

  afterAll(async () => {
    await testApp.close();
    restoreEnv();
  });

  const total = async (query: string): Promise<number> =>
    (await http('GET', `${fhir}/${query}${query.includes('?') ? '&' : '?'}_total=accurate`)).body
      .total as number;

  function observation(subject: string, value: number) {
    return {
      resourceType: 'Observation',
      status: 'final',
      code: { coding: [{ system: 'http://loinc.org', code: '2339-0' }] },
      subject: { reference: subject },
      valueQuantity: { value, unit: 'mg/dL', system: 'http://unitsofmeasure.org', code: 'mg/dL' },
    };
  }

  function patientWithObservations(mrn: string, count = 10, conditional = false) {
    const urn = `urn:uuid:${randomUUID()}`;
    return {
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [
        {
          fullUrl: urn,
          resource: buildPatient({ mrn }),
          request: {
            method: 'POST',
            url: 'Patient',
            ...(conditional ? { ifNoneExist: `identifier=${MRN}|${mrn}` } : {}),
          },
        },
        ...Array.from({ length: count }, (_, i) => ({
          fullUrl: `urn:uuid:${randomUUID()}`,
          resource: observation(urn, 90 + i),
          request: { method: 'POST', url: 'Observation' },
        })),
      ],
    };
  }

  it('commits a Patient and 10 Observations together, resolving urn:uuid references', async () => {
    const mrn = `TX-${randomUUID()}`;
    const res = await http('POST', fhir, { body: patientWithObservations(mrn) });
    expect(res.status).toBe(200);
    expect(res.body.type).toBe('transaction-response');
    const entries = res.body.entry as ResponseEntry[];
    expect(entries.map((e) => e.response.status)).toEqual(Array(11).fill('201 Created'));
    const patientId = entries[0]!.resource!.id;
    expect(entries[0]!.response.location).toBe(`Patient/${patientId}/_history/1`);
    for (const entry of entries.slice(1)) {
      expect((entry.resource!['subject'] as { reference: string }).reference).toBe(
        `Patient/${patientId}`,
      );
    }
    expect(await total(`Observation?subject=Patient/${patientId}`)).toBe(10);
  });

  it("resolves urn:uuid references in a JSON Patch entry's data", async () => {
    const mrn = `TX-${randomUUID()}`;
    const observation = await http('POST', `${fhir}/Observation`, {
      body: { resourceType: 'Observation', status: 'final', code: { text: 'unfiled' } },
    });
    expect(observation.status).toBe(201);
    const patientUrl = `urn:uuid:${randomUUID()}`;
    const jsonPatch = (operations: object[]) => ({
      resourceType: 'Binary',
      contentType: 'application/json-patch+json',
      data: Buffer.from(JSON.stringify(operations)).toString('base64'),
    });
    const res = await http('POST', fhir, {
      body: {
        resourceType: 'Bundle',
        type: 'transaction',
        entry: [
          {
            fullUrl: patientUrl,
            resource: buildPatient({ mrn }),
            request: { method: 'POST', url: 'Patient' },
          },
          {
            resource: jsonPatch([
              { op: 'add', path: '/subject', value: { reference: patientUrl } },
              { op: 'add', path: '/performer', value: [{ reference: 'Practitioner/x' }] },
              { op: 'replace', path: '/performer/0/reference', value: patientUrl },
            ]),
            request: { method: 'PATCH', url: `Observation/${String(observation.body.id)}` },
          },
        ],
      },
    });
    expect(res.status).toBe(200);
    const patientId = res.body.entry[0].resource.id as string;
    expect(res.body.entry[1].resource).toMatchObject({
      subject: { reference: `Patient/${patientId}` },
      performer: [{ reference: `Patient/${patientId}` }],
    });
    // One naming no entry is refused, as in a resource.
    const unknown = await http('POST', fhir, {
      body: {
        resourceType: 'Bundle',
        type: 'transaction',
        entry: [
          {
            resource: jsonPatch([
              { op: 'add', path: '/subject', value: { reference: `urn:uuid:${randomUUID()}` } },
            ]),
            request: { method: 'PATCH', url: `Observation/${String(observation.body.id)}` },
          },
        ],
      },
    });
    expect(unknown.status).toBe(400);
  });

  it('rolls everything back when one entry fails (invalid resource, 412, 404)', async () => {
    // Which entry failed is named, though new resources are checked and written together.
    const cases: [string, (bundle: { entry: unknown[] }) => void, number, number][] = [
      [
        'an invalid Observation',
        (bundle) => {
          (bundle.entry[5] as { resource: Record<string, unknown> }).resource['notAnElement'] = 1;
        },
        400,
        5,
      ],
      [
        'an If-Match that does not match',
        (bundle) => {
          bundle.entry.push({
            resource: { ...buildPatient(), id: 'no-such-version-here' },
            request: { method: 'PUT', url: 'Patient/no-such-version-here', ifMatch: 'W/"7"' },
          });
        },
        412,
        11,
      ],
      [
        'a delete of a missing resource',
        (bundle) => {
          bundle.entry.push({ request: { method: 'DELETE', url: 'Observation/missing-one' } });
        },
        404,
        11,
      ],
      [
        'an entry whose URL cannot be read',
        (bundle) => {
          bundle.entry.push({ request: { method: 'GET', url: 'patient?name=x' } });
        },
        400,
        11,
      ],
    ];
    for (const [name, spoil, status, failed] of cases) {
      const mrn = `RB-${randomUUID()}`;
      const bundle = patientWithObservations(mrn);
      spoil(bundle);
      const res = await http('POST', fhir, { body: bundle });
      expect({ name, status: res.status }).toEqual({ name, status });
      expect(res.body.resourceType).toBe('OperationOutcome');
      expect(res.body.issue[0].diagnostics).toMatch(new RegExp(`^Bundle\\.entry\\[${failed}\\]`));
      expect({ name, left: await total(`Patient?identifier=${MRN}|${mrn}`) }).toEqual({
        name,
        left: 0,
      });
    }
  });

  it('makes exactly one resource from 20 concurrent identical conditional creates', async () => {
    const mrn = `CC-${randomUUID()}`;
    const results = await Promise.all(
      Array.from({ length: 20 }, () =>
        http('POST', `${fhir}/Patient`, {
          body: buildPatient({ mrn }),
          headers: { 'if-none-exist': `identifier=${MRN}|${mrn}` },
        }),
      ),
    );
    const statuses = results.map((r) => r.status).sort();
    expect(statuses.filter((s) => s === 201)).toHaveLength(1);
    expect(statuses.filter((s) => s === 200)).toHaveLength(19);
    expect(new Set(results.map((r) => r.body.id)).size).toBe(1);
    expect(await total(`Patient?identifier=${MRN}|${mrn}`)).toBe(1);
  });

  it('does not duplicate a transaction replayed with conditional creates', async () => {
    const mrn = `RP-${randomUUID()}`;
    const bundle = patientWithObservations(mrn, 1, true);
    const first = await http('POST', fhir, { body: bundle });
    const second = await http('POST', fhir, { body: bundle });
    expect(first.body.entry[0].response.status).toBe('201 Created');
    expect(second.body.entry[0].response.status).toBe('200 OK');
    expect(second.body.entry[0].resource.id).toBe(first.body.entry[0].resource.id);
    expect(await total(`Patient?identifier=${MRN}|${mrn}`)).toBe(1);
  });

  it('makes one resource of two identical conditional creates in one transaction', async () => {
    const mrn = `TW-${randomUUID()}`;
    const twice = {
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [0, 1].map(() => ({
        fullUrl: `urn:uuid:${randomUUID()}`,
        resource: buildPatient({ mrn }),
        request: { method: 'POST', url: 'Patient', ifNoneExist: `identifier=${MRN}|${mrn}` },
      })),
    };
    const res = await http('POST', fhir, { body: twice });
    expect(res.status).toBe(200);
    const [first, second] = res.body.entry as ResponseEntry[];
    expect([first!.response.status, second!.response.status]).toEqual(['201 Created', '200 OK']);
    expect(second!.resource!.id).toBe(first!.resource!.id);
    expect(await total(`Patient?identifier=${MRN}|${mrn}`)).toBe(1);
  });

  it('refuses a transaction whose creates each fall under the conditional criteria of another', async () => {
    // Each conditional create searched before any of them was written, so criteria written in
    // other forms (with and without the MRN's system), a plain create of the same patient,
    // or a create by PUT, made two records of one patient where one after the other would have
    // made one.
    const cases = (mrn: string) => {
      const create = (ifNoneExist?: string) => ({
        resource: buildPatient({ mrn }),
        request: { method: 'POST', url: 'Patient', ...(ifNoneExist ? { ifNoneExist } : {}) },
      });
      const id = `cf-${randomUUID()}`;
      const putById = {
        resource: { ...buildPatient({ mrn }), id },
        request: { method: 'PUT', url: `Patient/${id}` },
      };
      return [
        [create(`identifier=${MRN}|${mrn}`), create(`identifier=${mrn}`)],
        [create(), create(`identifier=${MRN}|${mrn}`)],
        [putById, create(`identifier=${mrn}`)],
      ];
    };
    for (const i of [0, 1, 2]) {
      const mrn = `CF${i}-${randomUUID()}`;
      const res = await http('POST', fhir, {
        body: { resourceType: 'Bundle', type: 'transaction', entry: cases(mrn)[i] },
      });
      expect(res.status).toBe(412);
      expect(res.body.issue[0].diagnostics).toMatch(
        /^Bundle\.entry\[[01]\]: its conditional criteria also match the Patient that Bundle\.entry\[[01]\] creates/,
      );
      expect(res.text).not.toContain(mrn);
      expect(await total(`Patient?identifier=${MRN}|${mrn}`)).toBe(0);
    }
  });

  it('refers to what a conditional update matched or made by its fullUrl (upsert by MRN)', async () => {
    const mrn = `UP-${randomUUID()}`;
    const upsert = () => {
      const urn = `urn:uuid:${randomUUID()}`;
      return {
        resourceType: 'Bundle',
        type: 'transaction',
        entry: [
          {
            fullUrl: urn,
            resource: buildPatient({ mrn }),
            request: { method: 'PUT', url: `Patient?identifier=${MRN}|${mrn}` },
          },
          {
            fullUrl: `urn:uuid:${randomUUID()}`,
            resource: observation(urn, 101),
            request: { method: 'POST', url: 'Observation' },
          },
        ],
      };
    };
    const made = await http('POST', fhir, { body: upsert() });
    expect(made.status).toBe(200);
    const [patient, result] = made.body.entry as ResponseEntry[];
    expect(patient!.response.status).toBe('201 Created');
    expect(result!.resource!['subject']).toEqual({ reference: `Patient/${patient!.resource!.id}` });
    const again = await http('POST', fhir, { body: upsert() });
    const [same, next] = again.body.entry as ResponseEntry[];
    expect(same!.response.status).toBe('200 OK');
    expect(same!.resource!.id).toBe(patient!.resource!.id);
    expect(next!.resource!['subject']).toEqual({ reference: `Patient/${patient!.resource!.id}` });
    expect(await total(`Patient?identifier=${MRN}|${mrn}`)).toBe(1);
  });

  it('replaces urn:uuid placeholders in conditional URLs with the ids of entries processed before', async () => {
    // `PUT Observation?subject=urn:uuid:…` was a 400 ("A reference search value is Type/id…"):
    // HAPI puts in the id the transaction gave the entry of that fullUrl.
    const mrn = `PH-${randomUUID()}`;
    const loinc = (code: string) => ({ coding: [{ system: 'http://loinc.org', code }] });
    const send = () => {
      const urn = `urn:uuid:${randomUUID()}`;
      return http('POST', fhir, {
        body: {
          resourceType: 'Bundle',
          type: 'transaction',
          entry: [
            // Listed first, processed after the create it names (updates come after creates).
            {
              fullUrl: `urn:uuid:${randomUUID()}`,
              resource: observation(urn, 100),
              request: {
                method: 'PUT',
                url: `Observation?subject=${urn}&code=http://loinc.org|2339-0`,
              },
            },
            {
              fullUrl: urn,
              resource: buildPatient({ mrn }),
              request: { method: 'POST', url: 'Patient', ifNoneExist: `identifier=${MRN}|${mrn}` },
            },
            {
              fullUrl: `urn:uuid:${randomUUID()}`,
              resource: { ...observation(urn, 70), code: loinc('8867-4') },
              request: {
                method: 'POST',
                url: 'Observation',
                ifNoneExist: `subject=${urn}&code=http://loinc.org|8867-4`,
              },
            },
            {
              request: {
                method: 'GET',
                url: `Observation?subject=${encodeURIComponent(urn)}&_sort=_id`,
              },
            },
          ],
        },
      });
    };
    const made = await send();
    expect(made.status).toBe(200);
    const [update, patient, create, search] = made.body.entry as ResponseEntry[];
    expect([update, patient, create, search].map((e) => e!.response.status)).toEqual([
      '201 Created',
      '201 Created',
      '201 Created',
      '200 OK',
    ]);
    const subject = { reference: `Patient/${patient!.resource!.id}` };
    expect(update!.resource!['subject']).toEqual(subject);
    const found = (search!.resource!['entry'] as ResponseEntry[]).map((e) => e.resource!.id);
    expect(found.sort()).toEqual([update!.resource!.id, create!.resource!.id].sort());
    // Sent again, the placeholder stands for the Patient the conditional create matched.
    const again = await send();
    expect(again.status).toBe(200);
    const [updated, same, matched] = again.body.entry as ResponseEntry[];
    expect([updated, same, matched].map((e) => e!.response.status)).toEqual([
      '200 OK',
      '200 OK',
      '200 OK',
    ]);
    expect(same!.resource!.id).toBe(patient!.resource!.id);
    expect(updated!.resource!.id).toBe(update!.resource!.id);
    expect(matched!.resource!.id).toBe(create!.resource!.id);
    expect(await total(`Observation?subject=Patient/${patient!.resource!.id}`)).toBe(2);
  });

  it("reads an entry's relative references against its absolute fullUrl, as exports have them", async () => {
    const base = `http://export.example/fhir/`;
    const old = randomUUID();
    const res = await http('POST', fhir, {
      body: {
        resourceType: 'Bundle',
        type: 'transaction',
        entry: [
          {
            fullUrl: `${base}Patient/${old}`,
            resource: { ...buildPatient(), id: old },
            request: { method: 'POST', url: 'Patient' },
          },
          {
            fullUrl: `${base}Observation/${randomUUID()}`,
            resource: observation(`Patient/${old}`, 77),
            request: { method: 'POST', url: 'Observation' },
          },
        ],
      },
    });
    expect(res.status).toBe(200);
    const [patient, result] = res.body.entry as ResponseEntry[];
    expect(patient!.resource!.id).not.toBe(old);
    expect(result!.resource!['subject']).toEqual({ reference: `Patient/${patient!.resource!.id}` });
  });

  it('replaces an entry fullUrl in uri and url elements and narrative links, not in canonicals or strings', async () => {
    // IHE MHD's Provide Document Bundle: the DocumentReference finds its document by the
    // Binary's fullUrl in content.attachment.url, which is a url, not a Reference.
    const binary = `urn:uuid:${randomUUID()}`;
    const res = await http('POST', fhir, {
      body: {
        resourceType: 'Bundle',
        type: 'transaction',
        entry: [
          {
            fullUrl: `urn:uuid:${randomUUID()}`,
            resource: {
              resourceType: 'DocumentReference',
              text: {
                status: 'generated',
                div: `<div xmlns="http://www.w3.org/1999/xhtml"><a href="${binary}">the report</a></div>`,
              },
              extension: [
                { url: 'http://example.org/fhir/source', valueUri: binary },
                { url: 'http://example.org/fhir/profile', valueCanonical: binary },
              ],
              masterIdentifier: { system: 'urn:ietf:rfc:3986', value: binary },
              status: 'current',
              content: [{ attachment: { contentType: 'text/plain', url: binary } }],
            },
            request: { method: 'POST', url: 'DocumentReference' },
          },
          {
            fullUrl: binary,
            resource: { resourceType: 'Binary', contentType: 'text/plain', data: 'aGVsbG8=' },
            request: { method: 'POST', url: 'Binary' },
          },
        ],
      },
    });
    expect(res.status).toBe(200);
    const [document, stored] = res.body.entry as ResponseEntry[];
    const link = `Binary/${stored!.resource!.id}`;
    const read = (await http('GET', `${fhir}/DocumentReference/${document!.resource!.id}`)).body;
    expect(read.content).toEqual([{ attachment: { contentType: 'text/plain', url: link } }]);
    expect(read.text.div).toContain(`href="${link}"`);
    expect(read.extension).toEqual([
      { url: 'http://example.org/fhir/source', valueUri: link },
      { url: 'http://example.org/fhir/profile', valueCanonical: binary },
    ]);
    expect(read.masterIdentifier).toEqual({ system: 'urn:ietf:rfc:3986', value: binary });
  });

  it('stores a document Bundle of a transaction as it is, its own references unresolved', async () => {
    const patient = `urn:uuid:${randomUUID()}`;
    const document = {
      resourceType: 'Bundle',
      type: 'document',
      identifier: { system: 'urn:ietf:rfc:3986', value: `urn:uuid:${randomUUID()}` },
      timestamp: '2026-01-02T03:04:05Z',
      entry: [
        {
          fullUrl: `urn:uuid:${randomUUID()}`,
          resource: {
            resourceType: 'Composition',
            status: 'final',
            type: { text: 'Discharge summary' },
            subject: { reference: patient },
            date: '2026-01-02',
            author: [{ reference: `Practitioner?identifier=${MRN}|not-here` }],
            title: 'Discharge summary',
          },
        },
        { fullUrl: patient, resource: buildPatient() },
      ],
    };
    const res = await http('POST', fhir, {
      body: {
        resourceType: 'Bundle',
        type: 'transaction',
        entry: [
          {
            fullUrl: `urn:uuid:${randomUUID()}`,
            resource: document,
            request: { method: 'POST', url: 'Bundle' },
          },
        ],
      },
    });
    expect(res.status).toBe(200);
    const stored = (res.body.entry as ResponseEntry[])[0]!.resource!;
    expect(stored['entry']).toEqual(document.entry);
  });

  it('refuses to store a batch or transaction Bundle as a resource, which would run none of its entries', async () => {
    // A transaction POSTed to /fhir/Bundle rather than /fhir was kept as a document with a 201:
    // the client took its Patient for written, and nothing of it was.
    const mrn = `BT-${randomUUID()}`;
    const meant = (type: string) => ({
      resourceType: 'Bundle',
      type,
      entry: [{ resource: buildPatient({ mrn }), request: { method: 'POST', url: 'Patient' } }],
    });
    const id = `bt-${randomUUID()}`;
    const direct = await http('POST', `${fhir}/Bundle`, { body: meant('transaction') });
    const put = await http('PUT', `${fhir}/Bundle/${id}`, { body: { ...meant('batch'), id } });
    const entry = await http('POST', fhir, {
      body: {
        resourceType: 'Bundle',
        type: 'batch',
        entry: [{ resource: meant('transaction'), request: { method: 'POST', url: 'Bundle' } }],
      },
    });
    expect([direct.status, put.status, entry.body.entry[0].response.status]).toEqual([
      422,
      422,
      '422',
    ]);
    expect(direct.body.issue[0].diagnostics).toMatch(/POST it to the base URL/);
    expect(await total(`Patient?identifier=${MRN}|${mrn}`)).toBe(0);
    expect((await http('GET', `${fhir}/Bundle/${id}`)).status).toBe(404);
  });

  it('answers a read entry 304 when the client holds the current version (ifNoneMatch, ifModifiedSince)', async () => {
    const created = await http('POST', `${fhir}/Patient`, { body: buildPatient() });
    const url = `Patient/${created.body.id}`;
    const later = new Date(Date.now() + 60_000).toISOString();
    const res = await http('POST', fhir, {
      body: {
        resourceType: 'Bundle',
        type: 'batch',
        entry: [
          { request: { method: 'GET', url, ifNoneMatch: 'W/"1"' } },
          { request: { method: 'GET', url, ifNoneMatch: 'W/"0"' } },
          { request: { method: 'GET', url, ifModifiedSince: later } },
          // A version, as GET .../_history/1 with If-None-Match: it was answered whole.
          { request: { method: 'GET', url: `${url}/_history/1`, ifNoneMatch: 'W/"1"' } },
        ],
      },
    });
    const [same, stale, since, version] = res.body.entry as ResponseEntry[];
    expect(version).toEqual({ response: expect.objectContaining({ status: '304 Not Modified' }) });
    expect(same).toEqual({ response: expect.objectContaining({ status: '304 Not Modified' }) });
    expect(same!.resource).toBeUndefined();
    expect(stale!.response.status).toBe('200 OK');
    expect(stale!.resource!.id).toBe(created.body.id);
    expect(since!.response.status).toBe('304 Not Modified');
  });

  it('honours ifNoneMatch on update entries as PUT honours If-None-Match', async () => {
    // The entry's ifNoneMatch was dropped: `*` (create only) wrote over the stored resource.
    const mrn = `NM-${randomUUID()}`;
    const stored = (await http('POST', `${fhir}/Patient`, { body: buildPatient({ mrn }) })).body;
    const fresh = `nm-${randomUUID()}`;
    const put = (id: string, ifNoneMatch: string, url = `Patient/${id}`) => ({
      resource: { ...buildPatient({ mrn }), id, active: false },
      request: { method: 'PUT', url, ifNoneMatch },
    });
    const res = await http('POST', fhir, {
      body: {
        resourceType: 'Bundle',
        type: 'batch',
        entry: [
          put(stored.id, '*'),
          put(stored.id, 'W/"1"'),
          put(stored.id, '*', `Patient?identifier=${MRN}|${mrn}`),
          put(fresh, '*'),
        ],
      },
    });
    expect(res.body.entry.map((e: ResponseEntry) => e.response.status)).toEqual([
      '412',
      '412',
      '412',
      '201 Created',
    ]);
    const now = (await http('GET', `${fhir}/Patient/${stored.id}`)).body;
    expect([now.meta.versionId, now.active]).toEqual(['1', true]);
    const transaction = await http('POST', fhir, {
      body: { resourceType: 'Bundle', type: 'transaction', entry: [put(stored.id, '*')] },
    });
    expect(transaction.status).toBe(412);
    expect((await http('GET', `${fhir}/Patient/${stored.id}`)).body.meta.versionId).toBe('1');
  });

  it('refuses a fullUrl that is no urn:uuid, urn:oid or resource URL it claims to be, writing nothing', async () => {
    const mrn = `FU-${randomUUID()}`;
    const countByMrn = async () =>
      (await http('GET', `${fhir}/Patient?identifier=${MRN}|${mrn}&_summary=count`)).body.total;
    for (const fullUrl of [
      'urn:uuid:not-a-uuid',
      `urn:uuid:${randomUUID()}-1`,
      'urn:uuid:',
      'urn:oid:1.2.x',
      'urn:oid:3.1',
      'urn:oid:1.02',
      'http://a.example/fhir/Patient/1/_history/2',
    ]) {
      for (const type of ['transaction', 'batch']) {
        const res = await http('POST', fhir, {
          body: {
            resourceType: 'Bundle',
            type,
            entry: [
              {
                fullUrl,
                resource: buildPatient({ mrn }),
                request: { method: 'POST', url: 'Patient' },
              },
              {
                resource: observation(fullUrl, 80),
                request: { method: 'POST', url: 'Observation' },
              },
            ],
          },
        });
        const outcome = type === 'batch' ? res.body.entry?.[0]?.response?.outcome : res.body;
        expect([fullUrl, type, outcome?.issue?.[0]?.expression]).toEqual([
          fullUrl,
          type,
          ['Bundle.entry[0].fullUrl'],
        ]);
      }
    }
    expect(await countByMrn()).toBe(0);
    // An upper-case UUID is one still (RFC 4122 reads it in any case), and a well-formed OID.
    for (const fullUrl of [`urn:uuid:${randomUUID().toUpperCase()}`, 'urn:oid:1.2.840.10008.1']) {
      const res = await http('POST', fhir, {
        body: {
          resourceType: 'Bundle',
          type: 'transaction',
          entry: [
            {
              fullUrl,
              resource: buildPatient({ mrn }),
              request: { method: 'POST', url: 'Patient' },
            },
            { resource: observation(fullUrl, 80), request: { method: 'POST', url: 'Observation' } },
          ],
        },
      });
      expect([fullUrl, res.status]).toEqual([fullUrl, 200]);
    }
  });

  it('refuses a transaction that changes one resource twice, or repeats a fullUrl', async () => {
    const id = (
      await http('POST', `${fhir}/Patient`, { body: buildPatient({ mrn: `OV-${randomUUID()}` }) })
    ).body.id as string;
    const put = {
      resource: { ...buildPatient(), id },
      request: { method: 'PUT', url: `Patient/${id}` },
    };
    const del = { request: { method: 'DELETE', url: `Patient/${id}` } };
    const criteria = `Patient?_id=${id}`;
    const conditionalDel = { request: { method: 'DELETE', url: criteria } };
    const conditionalPut = { resource: buildPatient(), request: { method: 'PUT', url: criteria } };
    // Two conditional updates (or a conditional create and update) of the same criteria that
    // matched nothing were refused blaming the second's body id, which the client never sent.
    const twice = `OV-${randomUUID()}`;
    const unmatched = `Patient?identifier=${MRN}|${twice}`;
    const upsert = {
      resource: buildPatient({ mrn: twice }),
      request: { method: 'PUT', url: unmatched },
    };
    const conditionalCreate = {
      resource: buildPatient({ mrn: twice }),
      request: { method: 'POST', url: 'Patient', ifNoneExist: unmatched.slice('Patient?'.length) },
    };
    for (const [first, second] of [
      [upsert, upsert],
      [conditionalCreate, upsert],
    ]) {
      const res = await http('POST', fhir, {
        body: { resourceType: 'Bundle', type: 'transaction', entry: [first, second] },
      });
      expect(res.status).toBe(400);
      expect(res.body.issue[0].diagnostics).toMatch(
        /^Bundle\.entry\[1\] and Bundle\.entry\[0\] both change Patient\/[^:]+: a transaction changes each resource once$/,
      );
    }
    for (const entry of [
      [put, put],
      [del, put],
      [conditionalDel, put],
      [conditionalDel, conditionalPut],
    ]) {
      const res = await http('POST', fhir, {
        body: { resourceType: 'Bundle', type: 'transaction', entry },
      });
      expect(res.status).toBe(400);
      expect(res.body.issue[0].diagnostics).toBe(
        `Bundle.entry[1] and Bundle.entry[0] both change Patient/${id}: a transaction changes each resource once`,
      );
    }
    expect((await http('GET', `${fhir}/Patient/${id}`)).body.meta.versionId).toBe('1');
    // What a conditional delete matched, a conditional create of the same criteria makes anew
    // (deletes come first), and an entry may refer to it: it ran into the deleted one (410).
    const mrn = `CD-${randomUUID()}`;
    const gone = (await http('POST', `${fhir}/Patient`, { body: buildPatient({ mrn }) })).body
      .id as string;
    const byMrn = `identifier=${encodeURIComponent(`urn:oid:1.2.36.146.595.217.0.1|${mrn}`)}`;
    const created = `urn:uuid:${randomUUID()}`;
    const anew = await http('POST', fhir, {
      body: {
        resourceType: 'Bundle',
        type: 'transaction',
        entry: [
          { request: { method: 'DELETE', url: `Patient?${byMrn}` } },
          {
            fullUrl: created,
            resource: buildPatient({ mrn }),
            request: { method: 'POST', url: 'Patient', ifNoneExist: byMrn },
          },
          {
            resource: observation(created, 90),
            request: { method: 'POST', url: 'Observation' },
          },
        ],
      },
    });
    expect([anew.status, anew.body.entry?.map((e: ResponseEntry) => e.response.status)]).toEqual([
      200,
      ['204 No Content', '201 Created', '201 Created'],
    ]);
    expect(anew.body.entry[1].resource.id).not.toBe(gone);
    const urn = `urn:uuid:${randomUUID()}`;
    const repeated = await http('POST', fhir, {
      body: {
        resourceType: 'Bundle',
        type: 'transaction',
        entry: [0, 1].map(() => ({
          fullUrl: urn,
          resource: buildPatient(),
          request: { method: 'POST', url: 'Patient' },
        })),
      },
    });
    expect(repeated.status).toBe(400);
    expect(repeated.body.issue[0].diagnostics).toMatch(/^Bundle\.entry\[1\]\.fullUrl is also/);
  });

  it('deletes first: a conditional create matching what the Bundle deletes makes a new one', async () => {
    const mrn = `DC-${randomUUID()}`;
    const old = (await http('POST', `${fhir}/Patient`, { body: buildPatient({ mrn }) })).body
      .id as string;
    const res = await http('POST', fhir, {
      body: {
        resourceType: 'Bundle',
        type: 'transaction',
        entry: [
          {
            resource: buildPatient({ mrn }),
            request: { method: 'POST', url: 'Patient', ifNoneExist: `identifier=${MRN}|${mrn}` },
          },
          { request: { method: 'DELETE', url: `Patient/${old}` } },
        ],
      },
    });
    expect(res.status).toBe(200);
    const [created, deleted] = res.body.entry as ResponseEntry[];
    expect(created!.response.status).toBe('201 Created');
    expect(created!.resource!.id).not.toBe(old);
    expect(deleted!.response.status).toBe('204 No Content');
    expect((await http('GET', `${fhir}/Patient/${old}`)).status).toBe(410);
  });

  it('does not let a conditional update that matches nothing write over the id its body names', async () => {
    const other = await http('POST', `${fhir}/Patient`, {
      body: buildPatient({ mrn: `O-${randomUUID()}` }),
    });
    expect(other.status).toBe(201);
    // The body holds what the criteria ask for: one that does not is refused for that (400).
    const none = `NONE-${randomUUID()}`;
    const criteria = `identifier=${encodeURIComponent(`${MRN}|${none}`)}`;
    const body = { ...buildPatient({ mrn: none }), id: other.body.id as string };
    const refused = await http('PUT', `${fhir}/Patient?${criteria}`, { body });
    expect(refused.status).toBe(409);
    expect(refused.body.issue[0].code).toBe('conflict');
    const read = await http('GET', `${fhir}/Patient/${other.body.id as string}`);
    expect(read.body.meta.versionId).toBe('1');
    // An id nothing has: update as create, as before.
    const fresh = randomUUID();
    const created = await http('PUT', `${fhir}/Patient?${criteria}`, {
      body: { ...body, id: fresh },
    });
    expect(created.status).toBe(201);
    expect(created.body.id).toBe(fresh);
  });

  it('updates and deletes conditionally', async () => {
    const mrn = `CU-${randomUUID()}`;
    const criteria = `identifier=${encodeURIComponent(`${MRN}|${mrn}`)}`;
    const created = await http('PUT', `${fhir}/Patient?${criteria}`, {
      body: buildPatient({ mrn }),
    });
    expect(created.status).toBe(201);
    const updated = await http('PUT', `${fhir}/Patient?${criteria}`, {
      body: { ...buildPatient({ mrn }), active: false },
    });
    expect(updated.status).toBe(200);
    expect(updated.body.id).toBe(created.body.id);
    expect(updated.body.meta.versionId).toBe('2');
    const patch = (body: object[]) => ({
      body,
      headers: { 'content-type': 'application/json-patch+json' },
    });
    const patched = await http(
      'PATCH',
      `${fhir}/Patient?${criteria}`,
      patch([{ op: 'replace', path: '/active', value: true }]),
    );
    expect(patched.status).toBe(200);
    expect(patched.body).toMatchObject({ id: created.body.id, active: true });
    expect(patched.body.meta.versionId).toBe('3');
    // The same in a transaction, and a match that does not exist: 404.
    const inBundle = await http('POST', fhir, {
      body: {
        resourceType: 'Bundle',
        type: 'transaction',
        entry: [
          {
            resource: {
              resourceType: 'Binary',
              contentType: 'application/json-patch+json',
              data: Buffer.from(
                JSON.stringify([{ op: 'replace', path: '/active', value: false }]),
              ).toString('base64'),
            },
            request: { method: 'PATCH', url: `Patient?${criteria}` },
          },
        ],
      },
    });
    expect(inBundle.status).toBe(200);
    expect(inBundle.body.entry[0].resource).toMatchObject({ id: created.body.id, active: false });
    // A FHIRPath Patch entry is the Parameters resource itself.
    const fhirPathPatch = await http('POST', fhir, {
      body: {
        resourceType: 'Bundle',
        type: 'transaction',
        entry: [
          {
            resource: {
              resourceType: 'Parameters',
              parameter: [
                {
                  name: 'operation',
                  part: [
                    { name: 'type', valueCode: 'replace' },
                    { name: 'path', valueString: 'Patient.gender' },
                    { name: 'value', valueCode: 'other' },
                  ],
                },
              ],
            },
            request: { method: 'PATCH', url: `Patient?${criteria}` },
          },
        ],
      },
    });
    expect(fhirPathPatch.status).toBe(200);
    expect(fhirPathPatch.body.entry[0].resource).toMatchObject({
      id: created.body.id,
      gender: 'other',
      meta: { versionId: '5' },
    });
    const none = await http(
      'PATCH',
      `${fhir}/Patient?identifier=${encodeURIComponent(`${MRN}|none-${mrn}`)}`,
      patch([{ op: 'replace', path: '/active', value: true }]),
    );
    expect(none.status).toBe(404);
    // If-Match holds a conditional delete to the version it names, as a Bundle entry too.
    const stale = await http('DELETE', `${fhir}/Patient?${criteria}`, {
      headers: { 'if-match': 'W/"4"' },
    });
    expect(stale.status).toBe(412);
    const staleEntry = await http('POST', fhir, {
      body: {
        resourceType: 'Bundle',
        type: 'transaction',
        entry: [{ request: { method: 'DELETE', url: `Patient?${criteria}`, ifMatch: 'W/"4"' } }],
      },
    });
    expect(staleEntry.status).toBe(412);
    expect((await http('GET', `${fhir}/Patient/${created.body.id}`)).status).toBe(200);
    expect((await http('DELETE', `${fhir}/Patient?${criteria}`)).status).toBe(204);
    expect((await http('GET', `${fhir}/Patient/${created.body.id}`)).status).toBe(410);
    // Several matches: 412, nothing changed.
    const shared = `SH-${randomUUID()}`;
    await http('POST', `${fhir}/Patient`, { body: buildPatient({ mrn: shared }) });
    await http('POST', `${fhir}/Patient`, { body: buildPatient({ mrn: shared }) });
    const many = await http(
      'DELETE',
      `${fhir}/Patient?identifier=${encodeURIComponent(`${MRN}|${shared}`)}`,
    );
    expect(many.status).toBe(412);
    const manyPatched = await http(
      'PATCH',
      `${fhir}/Patient?identifier=${encodeURIComponent(`${MRN}|${shared}`)}`,
      patch([{ op: 'replace', path: '/active', value: true }]),
    );
    expect(manyPatched.status).toBe(412);
  });

  it('runs batch entries independently, each with its own status', async () => {
    const res = await http('POST', fhir, {
      body: {
        resourceType: 'Bundle',
        type: 'batch',
        entry: [
          { resource: buildPatient(), request: { method: 'POST', url: 'Patient' } },
          { request: { method: 'GET', url: 'Patient/not-there' } },
          {
            resource: { resourceType: 'Patient', notAnElement: true },
            request: { method: 'POST', url: 'Patient' },
          },
          { request: { method: 'GET', url: 'Patient?_count=1' } },
          // Entries whose request cannot be read fail alone too, not the whole batch.
          { request: { method: 'GET', url: '../Patient' } },
          { request: { method: 'FETCH', url: 'Patient' } },
          'not an entry',
          { request: { method: 'DELETE', url: 'Patient' } },
          { resource: buildPatient(), request: { method: 'POST', url: 'Patient' } },
          // An id the client chose is a PUT: a POST that dropped it made another resource.
          { resource: buildPatient(), request: { method: 'POST', url: 'Patient/chosen-1' } },
        ],
      },
    });
    expect(res.status).toBe(200);
    const entries = res.body.entry as ResponseEntry[];
    expect(entries.map((e) => e.response.status)).toEqual([
      '201 Created',
      '404',
      '400',
      '200 OK',
      '400',
      '400',
      '400',
      '400',
      '201 Created',
      '400',
    ]);
    expect(entries[9]!.response.outcome!.issue[0]!.diagnostics).toBe(
      'Bundle.entry[9].request.url of a POST is the type alone (Patient): the server assigns the id (PUT Patient/chosen-1 chooses it)',
    );
    expect(entries[1]!.response.outcome!.issue[0]!.diagnostics).toMatch(/^Bundle\.entry\[1\]/);
    expect(entries[3]!.resource!.resourceType).toBe('Bundle');
    expect(entries.slice(4, 8).map((e) => e.response.outcome!.issue[0]!.diagnostics)).toEqual([
      'Bundle.entry[4].request.url must be Type, Type/id or Type?criteria, or ' +
        'Type/id/_history[/vid], Type/_history, Patient/id/$everything, Patient/id/Type or ' +
        'Observation/$lastn',
      'Bundle.entry[5].request.method must be GET, POST, PUT, PATCH or DELETE',
      'Bundle.entry[6].request.method must be GET, POST, PUT, PATCH or DELETE',
      'Bundle.entry[7].request.url needs an id or criteria for DELETE',
    ]);
  });

  it('answers an entry that fails unexpectedly with its own 500, and runs the others', async () => {
    const service = testApp.app.get(FhirService);
    const create = service.create.bind(service);
    const spy = jest
      .spyOn(service, 'create')
      .mockImplementationOnce(create)
      .mockImplementationOnce(() => Promise.reject(new TypeError('x.includes is not a function')));
    const mrns = [randomUUID(), randomUUID(), randomUUID()];
    try {
      const res = await http('POST', fhir, {
        body: {
          resourceType: 'Bundle',
          type: 'batch',
          entry: mrns.map((mrn) => ({
            resource: buildPatient({ mrn }),
            request: { method: 'POST', url: 'Patient' },
          })),
        },
      });
      // The whole request was a 500 after the first entry had committed: a client retrying it
      // stored that patient twice.
      expect(res.status).toBe(200);
      const entries = res.body.entry as ResponseEntry[];
      expect(entries.map((e) => e.response.status)).toEqual(['201 Created', '500', '201 Created']);
      expect(entries[1]!.response.outcome!.issue).toEqual([
        {
          severity: 'fatal',
          code: 'exception',
          diagnostics: `Internal error (request id ${res.headers.get('x-request-id')})`,
        },
      ]);
    } finally {
      spy.mockRestore();
    }
    const stored = await Promise.all(
      mrns.map(async (mrn) => total(`Patient?identifier=${encodeURIComponent(`${MRN}|${mrn}`)}`)),
    );
    expect(stored).toEqual([1, 0, 1]);
  });

  it('resolves conditional references (Type?criteria) to the one resource they match', async () => {
    const mrn = `CR-${randomUUID()}`;
    const patient = await http('POST', `${fhir}/Patient`, { body: buildPatient({ mrn }) });
    expect(patient.status).toBe(201);
    const reference = `Patient?identifier=${MRN}|${mrn}`;
    for (const type of ['transaction', 'batch']) {
      const res = await http('POST', fhir, {
        body: {
          resourceType: 'Bundle',
          type,
          entry: [
            {
              resource: observation(reference, 101),
              request: { method: 'POST', url: 'Observation' },
            },
            {
              // performer, which may be the patient (hasMember may not: it takes Observations).
              resource: { ...observation(reference, 102), performer: [{ reference }] },
              request: { method: 'POST', url: 'Observation' },
            },
          ],
        },
      });
      expect({ type, status: res.status }).toEqual({ type, status: 200 });
      const entries = res.body.entry as ResponseEntry[];
      expect(entries.map((e) => e.response.status)).toEqual(['201 Created', '201 Created']);
      expect(entries[0]!.resource!['subject']).toEqual({ reference: `Patient/${patient.body.id}` });
      // Each answer carrying a resource names it by its absolute URL.
      expect((entries[0] as { fullUrl?: string }).fullUrl).toBe(
        `${fhir}/Observation/${String(entries[0]!.resource!['id'])}`,
      );
      expect(entries[1]!.resource!['performer']).toEqual([
        { reference: `Patient/${patient.body.id}` },
      ]);
    }
    expect(await total(`Observation?subject=Patient/${String(patient.body.id)}`)).toBe(4);

    // A conditional create and references with its criteria: the same resource, whether this
    // Bundle creates it or it exists already (ifNoneExist given with its type, as clients do).
    const lab = `LAB-${randomUUID()}`;
    const organization = `Organization?identifier=urn:example:labs|${lab}`;
    const withLab = () => ({
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [
        {
          resource: { ...observation(reference, 103), performer: [{ reference: organization }] },
          request: { method: 'POST', url: 'Observation' },
        },
        {
          resource: {
            resourceType: 'Organization',
            identifier: [{ system: 'urn:example:labs', value: lab }],
            name: 'North Lab',
          },
          request: { method: 'POST', url: 'Organization', ifNoneExist: organization },
        },
      ],
    });
    const performers: unknown[] = [];
    for (const expected of ['201 Created', '200 OK']) {
      const res = await http('POST', fhir, { body: withLab() });
      expect(res.status).toBe(200);
      const [result, org] = res.body.entry as ResponseEntry[];
      expect(org!.response.status).toBe(expected);
      expect(result!.resource!['performer']).toEqual([
        { reference: `Organization/${org!.resource!.id}` },
      ]);
      performers.push(result!.resource!['performer']);
    }
    expect(performers[0]).toEqual(performers[1]);
    expect(await total(`Organization?identifier=urn:example:labs|${lab}`)).toBe(1);
  });

  it('fails a conditional reference that matches none or several, or that a write outside a Bundle carries, without echoing its criteria', async () => {
    const mrn = `CR-${randomUUID()}`;
    const none = await http('POST', fhir, {
      body: {
        resourceType: 'Bundle',
        type: 'transaction',
        entry: [
          { resource: buildPatient({ mrn }), request: { method: 'POST', url: 'Patient' } },
          {
            resource: observation(`Patient?identifier=${MRN}|${mrn}-elsewhere`, 1),
            request: { method: 'POST', url: 'Observation' },
          },
        ],
      },
    });
    expect(none.status).toBe(404);
    expect(none.body.issue[0].diagnostics).toBe(
      'Bundle.entry[1]: The conditional reference at Observation.subject matches no Patient',
    );
    expect(await total(`Patient?identifier=${MRN}|${mrn}`)).toBe(0);

    for (let i = 0; i < 2; i++) {
      expect((await http('POST', `${fhir}/Patient`, { body: buildPatient({ mrn }) })).status).toBe(
        201,
      );
    }
    const reference = `Patient?identifier=${MRN}|${mrn}`;
    const several = await http('POST', fhir, {
      body: {
        resourceType: 'Bundle',
        type: 'transaction',
        entry: [
          { resource: observation(reference, 1), request: { method: 'POST', url: 'Observation' } },
        ],
      },
    });
    expect(several.status).toBe(412);
    expect(several.body.issue[0].diagnostics).toBe(
      'Bundle.entry[0]: More than one Patient matches the conditional reference at Observation.subject',
    );

    // A create outside a Bundle would keep the search as a reference that leads nowhere.
    const plain = await http('POST', `${fhir}/Observation`, { body: observation(reference, 1) });
    expect(plain.status).toBe(400);
    expect(plain.body.issue[0]).toMatchObject({
      diagnostics: expect.stringMatching(/^Observation\.subject is a conditional reference/),
      expression: ['Observation.subject'],
    });
    for (const res of [none, several, plain]) expect(res.text).not.toContain(mrn);

    // Resolving searches: billing may write a Coverage but not search contracts.
    const billing = authorizedHttp(await tokenFor(testApp, 'billing'));
    const coverage = await billing('POST', fhir, {
      body: {
        resourceType: 'Bundle',
        type: 'transaction',
        entry: [
          {
            resource: {
              resourceType: 'Coverage',
              status: 'active',
              beneficiary: { reference: 'Patient/anyone' },
              payor: [{ reference: 'Organization/any-payor' }],
              contract: [{ reference: 'Contract?identifier=C-1' }],
            },
            request: { method: 'POST', url: 'Coverage' },
          },
        ],
      },
    });
    expect(coverage.status).toBe(403);
    expect(coverage.body.issue[0].diagnostics).toBe(
      'Bundle.entry[0]: Access denied: the conditional reference at Coverage.contract searches Contract',
    );
  });

  it('answers write entries as Prefer: return= asks, leaving reads and searches whole', async () => {
    const bundle = (mrn: string) => ({
      resourceType: 'Bundle',
      type: 'batch',
      entry: [
        { resource: buildPatient({ mrn }), request: { method: 'POST', url: 'Patient' } },
        { request: { method: 'GET', url: `Patient?identifier=${MRN}|${mrn}` } },
        { request: { method: 'DELETE', url: 'Observation/not-there-either' } },
      ],
    });
    const minimal = await http('POST', fhir, {
      body: bundle(`PM-${randomUUID()}`),
      headers: { prefer: 'return=minimal' },
    });
    const [created, searched] = minimal.body.entry as ResponseEntry[];
    expect(created).toEqual({
      response: {
        status: '201 Created',
        location: expect.stringMatching(/^Patient\/[0-9a-f-]+\/_history\/1$/),
        etag: 'W/"1"',
        lastModified: expect.any(String),
      },
    });
    expect(searched!.resource!.resourceType).toBe('Bundle');
    expect((searched!.resource!['entry'] as unknown[]).length).toBe(1);

    const outcome = await http('POST', fhir, {
      body: bundle(`PO-${randomUUID()}`),
      headers: { prefer: 'return=OperationOutcome' },
    });
    const written = (outcome.body.entry as ResponseEntry[])[0]!;
    expect(written.resource).toBeUndefined();
    expect(written.response.outcome!.issue[0]!.diagnostics).toBe(
      `Stored as ${written.response.location!}`,
    );
    const full = await http('POST', fhir, { body: bundle(`PR-${randomUUID()}`) });
    expect((full.body.entry as ResponseEntry[])[0]!.resource!.resourceType).toBe('Patient');
  });

  it('reads versions, histories, compartments and $everything in batch GET entries', async () => {
    const created = await http('POST', `${fhir}/Patient`, { body: buildPatient() });
    const patient = `Patient/${String(created.body.id)}`;
    const updated = await http('PUT', `${fhir}/${patient}`, {
      body: { ...created.body, gender: 'other' },
    });
    expect(updated.status).toBe(200);
    const obs = await http('POST', `${fhir}/Observation`, { body: observation(patient, 90) });
    const get = (url: string) => ({ request: { method: 'GET', url } });
    const res = await http('POST', fhir, {
      body: {
        resourceType: 'Bundle',
        type: 'batch',
        entry: [
          get(`${patient}/_history/1`),
          get(`${patient}/_history?_count=1`),
          get(`${patient}/Observation?code=2339-0`),
          get(`${patient}/$everything`),
          get(`${patient}?_elements=gender`),
          get(`Observation/${String(obs.body.id)}/Observation`),
          get(`Observation/${String(obs.body.id)}/$everything`),
          get(`${patient}/_history/9`),
          get(`Observation/$lastn?patient=${patient}`),
          get(`Patient/_history?_count=1`),
        ],
      },
    });
    expect(res.status).toBe(200);
    const [
      v1,
      history,
      compartment,
      everything,
      partial,
      notPatient,
      notEverything,
      missing,
      lastn,
      typeHistory,
    ] = res.body.entry as (ResponseEntry & { resource: any })[];
    expect(v1!.response).toMatchObject({ status: '200 OK', location: `${patient}/_history/1` });
    expect(v1!.resource.gender).toBe('female');
    expect(history!.resource).toMatchObject({ type: 'history', total: 2 });
    expect(history!.resource.entry).toHaveLength(1);
    expect(compartment!.resource.entry.map((e: any) => e.resource.id)).toEqual([obs.body.id]);
    expect(everything!.resource.entry.map((e: any) => e.resource.resourceType).sort()).toEqual([
      'Observation',
      'Patient',
    ]);
    expect(partial!.resource.gender).toBe('other');
    expect(partial!.resource).not.toHaveProperty('name');
    expect(partial!.resource.meta.tag).toEqual([expect.objectContaining({ code: 'SUBSETTED' })]);
    expect(notPatient!.response.status).toBe('400');
    expect(notPatient!.response.outcome!.issue[0]!.diagnostics).toContain(
      'Compartment search is offered for the Patient compartment',
    );
    expect(notEverything!.response.status).toBe('400');
    expect(missing!.response.status).toBe('404');
    expect(lastn!.resource.entry.map((e: any) => e.resource.id)).toEqual([obs.body.id]);
    expect(typeHistory!.resource).toMatchObject({ type: 'history' });
    expect(typeHistory!.resource.entry).toHaveLength(1);
  });

  it("seals a search entry's criteria into its links, which would carry a name in plaintext, and pages on them", async () => {
    const family = `Zqx${randomUUID().slice(0, 8)}`;
    const ids = [];
    for (let i = 0; i < 2; i++) {
      ids.push((await http('POST', `${fhir}/Patient`, { body: buildPatient({ family }) })).body.id);
    }
    const patient = `Patient/${String(ids[0])}`;
    const res = await http('POST', fhir, {
      body: {
        resourceType: 'Bundle',
        type: 'batch',
        entry: [
          { request: { method: 'GET', url: `Patient?family=${family}&_count=1` } },
          { request: { method: 'GET', url: `${patient}/Observation?code=2339-0&_count=1` } },
          { request: { method: 'GET', url: `Observation/$lastn?patient=${patient}` } },
        ],
      },
    });
    expect(res.status).toBe(200);
    const [search, compartment, lastn] = res.body.entry as (ResponseEntry & { resource: any })[];
    for (const [what, entry, criteria] of [
      ['search', search, `family=${family}`],
      ['compartment', compartment, 'code=2339-0'],
      ['lastn', lastn, `patient=${patient}`],
    ] as const) {
      const links = JSON.stringify(entry!.resource.link);
      expect({ what, leaks: links.includes(criteria) }).toEqual({ what, leaks: false });
    }
    type Link = { relation: string; url: string };
    const next = (bundle: { link: Link[] }) =>
      bundle.link.find((link) => link.relation === 'next')?.url;
    const first = search!.resource;
    const second = (await http('GET', next(first)!)).body;
    expect([...first.entry, ...second.entry].map((e: any) => e.resource.id).sort()).toEqual(
      [...ids].sort(),
    );
    expect(JSON.stringify(second.link)).not.toContain(family);
  });

  it('refuses a Bundle of more than 10,000 entries whole, storing nothing', async () => {
    for (const type of ['batch', 'transaction']) {
      const mrn = `CAP-${randomUUID()}`;
      const entry = [
        { resource: buildPatient({ mrn }), request: { method: 'POST', url: 'Patient' } },
        ...Array.from({ length: 10_000 }, () => ({
          request: { method: 'GET', url: `Patient/${randomUUID()}` },
        })),
      ];
      const res = await http('POST', fhir, { body: { resourceType: 'Bundle', type, entry } });
      expect({ type, status: res.status }).toEqual({ type, status: 400 });
      expect(res.body.issue[0]).toMatchObject({
        code: 'too-costly',
        diagnostics: 'A Bundle holds at most 10000 entries; this one has 10001: send it in parts',
      });
      expect(await total(`Patient?identifier=${MRN}|${mrn}`)).toBe(0);
    }
  });

  it("answers a batch's reads until they return 10,000 resources, then refuses the later reads", async () => {
    const created = await http('POST', fhir, {
      body: patientWithObservations(`BIG-${randomUUID()}`, 999),
    });
    expect(created.status).toBe(200);
    const patient = (created.body.entry as ResponseEntry[])[0]!.resource!.id;
    const everything = { request: { method: 'GET', url: `Patient/${patient}/$everything` } };
    const mrn = `AFTER-${randomUUID()}`;
    const res = await http('POST', fhir, {
      body: {
        resourceType: 'Bundle',
        type: 'batch',
        entry: [
          // 1,000 resources each: the tenth brings the batch to 10,000.
          ...Array<unknown>(12).fill(everything),
          { resource: buildPatient({ mrn }), request: { method: 'POST', url: 'Patient' } },
        ],
      },
    });
    expect(res.status).toBe(200);
    const entries = res.body.entry as (ResponseEntry & { resource?: { total?: number } })[];
    expect(entries.slice(0, 10).map((e) => [e.response.status, e.resource?.total])).toEqual(
      Array(10).fill(['200 OK', 1000]),
    );
    for (const [index, refused] of entries.slice(10, 12).entries()) {
      expect(refused.response.status).toBe('400');
      expect(refused.response.outcome!.issue[0]).toMatchObject({
        code: 'too-costly',
        diagnostics: `Bundle.entry[${10 + index}]: The reads of one Bundle return at most 10000 resources together, and the entries before this one have: send it in another request`,
      });
    }
    // Writes are not reads: the entry after them still runs.
    expect(entries[12]!.response.status).toBe('201 Created');
    // A transaction's reads have the same limit, and such a read fails the transaction.
    const transaction = await http('POST', fhir, {
      body: {
        resourceType: 'Bundle',
        type: 'transaction',
        entry: Array<unknown>(11).fill(everything),
      },
    });
    expect(transaction.status).toBe(400);
    expect(transaction.body.issue[0].code).toBe('too-costly');
  });

  it('checks every entry against the permission matrix', async () => {
    const nurse = authorizedHttp(await tokenFor(testApp, 'nurse'));
    const transaction = await nurse('POST', fhir, {
      body: patientWithObservations(`NU-${randomUUID()}`, 1),
    });
    expect(transaction.status).toBe(403);
    const patient = await http('POST', `${fhir}/Patient`, { body: buildPatient() });
    const batch = await nurse('POST', fhir, {
      body: {
        resourceType: 'Bundle',
        type: 'batch',
        entry: [
          { resource: buildPatient(), request: { method: 'POST', url: 'Patient' } },
          {
            resource: observation(`Patient/${String(patient.body.id)}`, 1),
            request: { method: 'POST', url: 'Observation' },
          },
        ],
      },
    });
    expect(batch.body.entry.map((e: ResponseEntry) => e.response.status)).toEqual([
      '403',
      '201 Created',
    ]);
  });

  it('checks a delete entry as a delete: a role that may update but not delete is refused', async () => {
    // Nurses record observations (create, update) and delete none, as the direct route says.
    const nurse = authorizedHttp(await tokenFor(testApp, 'nurse'));
    const patient = await http('POST', `${fhir}/Patient`, { body: buildPatient() });
    const created = await http('POST', `${fhir}/Observation`, {
      body: observation(`Patient/${String(patient.body.id)}`, 1),
    });
    expect(created.status).toBe(201);
    const url = `Observation/${String(created.body.id)}`;
    expect((await nurse('DELETE', `${fhir}/${url}`)).status).toBe(403);
    const batch = await nurse('POST', fhir, {
      body: {
        resourceType: 'Bundle',
        type: 'batch',
        entry: [{ request: { method: 'DELETE', url } }],
      },
    });
    expect(batch.body.entry.map((e: ResponseEntry) => e.response.status)).toEqual(['403']);
    const transaction = await nurse('POST', fhir, {
      body: {
        resourceType: 'Bundle',
        type: 'transaction',
        entry: [{ request: { method: 'DELETE', url } }],
      },
    });
    expect(transaction.status).toBe(403);
    expect((await http('GET', `${fhir}/${url}`)).status).toBe(200);
  });

  it('resolves the same conditional creates from concurrent transactions in any entry order without deadlocking', async () => {
    const mrns = Array.from({ length: 5 }, (_, i) => `LOCK-${randomUUID()}-${i}`);
    const bundle = (k: number) => {
      const rotated = [...mrns.slice(k % mrns.length), ...mrns.slice(0, k % mrns.length)];
      return {
        resourceType: 'Bundle',
        type: 'transaction',
        entry: (k % 2 ? rotated.reverse() : rotated).map((mrn) => ({
          fullUrl: `urn:uuid:${randomUUID()}`,
          resource: buildPatient({ mrn }),
          request: { method: 'POST', url: 'Patient', ifNoneExist: `identifier=${MRN}|${mrn}` },
        })),
      };
    };
    const bundles = 12;
    const responses = await Promise.all(
      Array.from({ length: bundles }, (_, k) => http('POST', fhir, { body: bundle(k) })),
    );
    expect(responses.map((res) => [res.status, res.body.issue?.[0]?.diagnostics])).toEqual(
      Array.from({ length: bundles }, () => [200, undefined]),
    );
    for (const mrn of mrns) {
      expect(await total(`Patient?identifier=${encodeURIComponent(`${MRN}|${mrn}`)}`)).toBe(1);
    }
  });

  it('writes the same resources from concurrent transactions in any entry order without deadlocking', async () => {
    const ids = Array.from({ length: 6 }, (_, i) => `lock-order-${randomUUID()}-${i}`);
    // Each Bundle lists the resources in another order: rotated, and every other one reversed.
    const orderOf = (k: number) => {
      const rotated = [...ids.slice(k % ids.length), ...ids.slice(0, k % ids.length)];
      return k % 2 ? rotated.reverse() : rotated;
    };
    const bundle = (k: number) => ({
      resourceType: 'Bundle',
      type: 'transaction',
      entry: orderOf(k).map((id) => ({
        fullUrl: `${fhir}/Patient/${id}`,
        resource: { ...buildPatient({ family: 'Lockorder' }), id },
        request: { method: 'PUT', url: `Patient/${id}` },
      })),
    });
    const bundles = 12;
    // First as update-as-create (every Bundle races to insert version 1), then as updates.
    for (let round = 0; round < 2; round++) {
      const responses = await Promise.all(
        Array.from({ length: bundles }, (_, k) =>
          http('POST', fhir, { body: bundle(round * bundles + k) }),
        ),
      );
      expect(responses.map((res) => [res.status, res.body.issue?.[0]?.diagnostics])).toEqual(
        Array.from({ length: bundles }, () => [200, undefined]),
      );
    }
    for (const id of ids) {
      const history = await http('GET', `${fhir}/Patient/${id}/_history?_count=100`);
      const versions = (history.body.entry as { resource: { meta: { versionId: string } } }[])
        .map((entry) => Number(entry.resource.meta.versionId))
        .sort((a, b) => a - b);
      expect(versions).toEqual(Array.from({ length: 2 * bundles }, (_, i) => i + 1));
    }
  });

  (existsSync(SAMPLES) ? it : it.skip)(
    'loads every Synthea bundle as a transaction and finds its patients by name, birth date and identifier',
    async () => {
      const files = (await readdir(SAMPLES)).filter((file) => file.endsWith('.json')).sort();
      for (const file of files) {
        const bundle = JSON.parse(await readFile(`${SAMPLES}${file}`, 'utf8'));
        const res = await http('POST', fhir, { body: bundle });
        expect({ file, status: res.status, issue: res.body.issue?.[0] }).toEqual({
          file,
          status: 200,
          issue: undefined,
        });
        // The Synthea suite may have stored the same people under their own ids: look for the
        // ids this transaction assigned.
        const entries = bundle.entry as { resource: Record<string, any> }[];
        for (const [i, entry] of entries.entries()) {
          const patient = entry.resource;
          if (patient['resourceType'] !== 'Patient') continue;
          const createdId = (res.body.entry as ResponseEntry[])[i]!.resource!.id;
          const family = patient['name'][0].family as string;
          const identifier = patient['identifier'][1] as { system: string; value: string };
          const query = `family=${encodeURIComponent(family)}&birthdate=${patient['birthDate']}&identifier=${encodeURIComponent(`${identifier.system}|${identifier.value}`)}`;
          const found = await http('GET', `${fhir}/Patient?${query}`);
          const ids = (found.body.entry as { resource: { id: string } }[]).map(
            (e) => e.resource.id,
          );
          expect({ file, found: ids.includes(createdId) }).toEqual({ file, found: true });
          expect(ids.length).toBeLessThanOrEqual(2);
        }
      }
    },
    300_000,
  );
});
