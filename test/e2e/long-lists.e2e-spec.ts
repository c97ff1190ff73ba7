import { randomUUID } from 'node:crypto';
import type { HttpFn } from '../support/http.js';
import { doctorApp } from '../support/doctor-app.js';
import type { TestApp } from '../support/test-app.js';

/**
 * A list as long as a body under BODY_LIMIT may carry. The index extractor passed a list's
 * values on as call arguments, and past some 120,000 of them that overflowed the stack: the
 * write was a 500 (until 2026-12-07).
 */
describe('FHIR: resources with very long lists', () => {
  let testApp: TestApp;
  let http: HttpFn;
  let fhir: string;

  beforeAll(async () => {
    ({ testApp, http, fhir } = await doctorApp());
  });

  afterAll(async () => {
    await testApp.close();
  });

  it('stores and finds a Patient with 180,000 given names', async () => {
    const family = `Long${randomUUID().replace(/-/g, '')}`;
    const given = Array.from({ length: 180_000 }, () => 'a');
    const created = await http('POST', `${fhir}/Patient`, {
      body: { resourceType: 'Patient', name: [{ family, given }] },
    });
    expect(created.status).toBe(201);
    const read = await http('GET', `${fhir}/Patient/${created.body.id}`);
    expect(read.body.name[0].given).toHaveLength(given.length);
    const found = await http('GET', `${fhir}/Patient?family:exact=${family}`);
    expect(found.body.entry.map((e: { resource: { id: string } }) => e.resource.id)).toEqual([
      created.body.id,
    ]);
  });

  it('stores and finds by date an Observation whose Timing has 140,000 events', async () => {
    const code = `long-${randomUUID()}`;
    const event = Array.from({ length: 140_000 }, (_, i) => `${2000 + (i % 20)}`);
    const created = await http('POST', `${fhir}/Observation`, {
      body: {
        resourceType: 'Observation',
        status: 'final',
        code: { coding: [{ system: 'urn:carevault:test', code }] },
        effectiveTiming: { event },
      },
    });
    expect(created.status).toBe(201);
    const found = await http(
      'GET',
      `${fhir}/Observation?code=urn:carevault:test|${code}&date=ge2019-06-01`,
    );
    expect(found.body.entry.map((e: { resource: { id: string } }) => e.resource.id)).toEqual([
      created.body.id,
    ]);
  });

  it('reports, with $validate, a resource with 200,000 invalid values: the first 100 issues', async () => {
    const res = await http('POST', `${fhir}/Patient/$validate`, {
      body: {
        resourceType: 'Patient',
        name: [{ given: Array.from({ length: 200_000 }, () => 5) }],
      },
    });
    expect(res.status).toBe(200);
    expect(res.body.issue).toHaveLength(101);
    expect(res.body.issue[0]).toMatchObject({
      severity: 'error',
      expression: ['Patient.name[0].given[0]'],
    });
    expect(res.body.issue[100].diagnostics).toBe('199900 more issues are not listed');
  });
});
