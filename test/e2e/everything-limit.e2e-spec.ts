import { DataSource } from 'typeorm';
import { buildPatient } from '../support/factories.js';
import { tokenFor } from '../support/auth.js';
import { withEnv } from '../support/env.js';
import { authorizedHttp, type HttpFn } from '../support/http.js';
import { createTestApp, type TestApp } from '../support/test-app.js';

/** Of README: "The record is at most 10,000 resources (Bulk Data export for more)". */
const MAX_RESOURCES = 10_000;

describe('Patient/{id}/$everything of a large record', () => {
  let testApp: TestApp;
  let fhir: string;
  let http: HttpFn;
  let restoreEnv: () => void;
  let patient: string;
  let report: string;

  /** Stores `count` Observations of the patient, in transactions of 2,000. */
  async function addObservations(count: number): Promise<void> {
    for (let done = 0; done < count; done += 2000) {
      const entry = Array.from({ length: Math.min(2000, count - done) }, (_, i) => ({
        resource: {
          resourceType: 'Observation',
          status: 'final',
          code: { coding: [{ system: 'http://loinc.org', code: '2339-0' }] },
          // `subject` indexes the patient twice: as the subject and as the patient.
          subject: { reference: `Patient/${patient}` },
          valueQuantity: { value: done + i },
        },
        request: { method: 'POST', url: 'Observation' },
      }));
      const res = await http('POST', fhir, {
        body: { resourceType: 'Bundle', type: 'transaction', entry },
      });
      expect(res.status).toBe(200);
    }
  }

  beforeAll(async () => {
    restoreEnv = withEnv({ BODY_LIMIT: String(8 * 1024 * 1024) });
    testApp = await createTestApp();
    fhir = `${testApp.url}/fhir`;
    http = authorizedHttp(await tokenFor(testApp, 'doctor'));
    patient = (await http('POST', `${fhir}/Patient`, { body: buildPatient({}) })).body.id as string;
    report = (
      await http('POST', `${fhir}/DiagnosticReport`, {
        body: {
          resourceType: 'DiagnosticReport',
          status: 'final',
          code: { coding: [{ system: 'http://loinc.org', code: '24323-8' }] },
          subject: { reference: `Patient/${patient}` },
        },
      })
    ).body.id as string;
  });

  afterAll(async () => {
    await testApp.close();
    restoreEnv();
  });

  it('loads only the rows of the page asked for, and counts no restricted record', async () => {
    const small = (await http('POST', `${fhir}/Patient`, { body: buildPatient({}) })).body
      .id as string;
    const observation = (extra = {}) => ({
      resourceType: 'Observation',
      status: 'final',
      code: { coding: [{ system: 'http://loinc.org', code: '2339-0' }] },
      subject: { reference: `Patient/${small}` },
      ...extra,
    });
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      ids.push((await http('POST', `${fhir}/Observation`, { body: observation() })).body.id);
    }
    const restricted = {
      system: 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality',
      code: 'R',
    };
    await http('POST', `${fhir}/Observation`, {
      body: observation({ meta: { security: [restricted] } }),
    });
    ids.sort();
    const whole = await http('GET', `${fhir}/Patient/${small}/$everything`);
    expect(whole.body.total).toBe(4);
    expect(whole.body.entry.map((e: { resource: { id: string } }) => e.resource.id)).toEqual([
      small,
      ...ids,
    ]);
    // The last Observation of the order, made unreadable (another row's ciphertext, bound to
    // that row's id): a page before it never opens it.
    const database = testApp.app.get(DataSource);
    const content = async (id: string) =>
      (
        await database.query<{ content: string }[]>(
          `SELECT content FROM resource WHERE resource_type = 'Observation' AND id = $1`,
          [id],
        )
      )[0]!.content;
    const setContent = (id: string, text: string) =>
      database.query(
        `UPDATE resource SET content = $2 WHERE resource_type = 'Observation' AND id = $1`,
        [id, text],
      );
    const last = ids[ids.length - 1]!;
    const stored = await content(last);
    await setContent(last, await content(ids[0]!));
    try {
      const first = await http('GET', `${fhir}/Patient/${small}/$everything?_count=2`);
      expect(first.status).toBe(200);
      expect(first.body.total).toBe(4);
      expect(first.body.entry.map((e: { resource: { id: string } }) => e.resource.id)).toEqual([
        small,
        ids[0],
      ]);
      expect(first.body.link[1].relation).toBe('next');
    } finally {
      await setContent(last, stored);
    }
  });

  it('answers a record whose resources refer to the patient twice whole, each once', async () => {
    await addObservations(6000);
    const res = await http('GET', `${fhir}/Patient/${patient}/$everything`);
    expect(res.status).toBe(200);
    const entries = res.body.entry as { resource: { resourceType: string; id: string } }[];
    const keys = entries.map((e) => `${e.resource.resourceType}/${e.resource.id}`);
    expect(res.body.total).toBe(6002);
    expect(new Set(keys).size).toBe(6002);
    expect(keys).toContain(`DiagnosticReport/${report}`);
    expect(keys.filter((key) => key.startsWith('Observation/'))).toHaveLength(6000);
  });

  it('refuses a record over 10,000 resources with 400 rather than cut it short', async () => {
    // The patient's DiagnosticReport and Observations: one more than the limit.
    await addObservations(MAX_RESOURCES - 6000);
    const res = await http('GET', `${fhir}/Patient/${patient}/$everything?_count=1`);
    expect(res.status).toBe(400);
    expect(res.body.issue[0]).toMatchObject({
      code: 'too-long',
      diagnostics: 'More than 10000 resources: use Bulk Data export',
    });
    // What is asked for counts: the report alone is well within the limit.
    const reports = await http(
      'GET',
      `${fhir}/Patient/${patient}/$everything?_type=DiagnosticReport`,
    );
    expect(reports.status).toBe(200);
    expect(reports.body.entry.map((e: { resource: { id: string } }) => e.resource.id)).toEqual([
      report,
    ]);
  });
});
