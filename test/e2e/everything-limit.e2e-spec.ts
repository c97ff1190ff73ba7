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
