import { jest } from '@jest/globals';
import { scopedHttp, tokenFor } from '../support/auth.js';
import { buildPatient } from '../support/factories.js';
import { authorizedHttp, type HttpFn } from '../support/http.js';
import { createTestApp, type TestApp } from '../support/test-app.js';
import { ResourceRepository } from '../../src/fhir/resource.repository.js';

const observation = (patient: string) => ({
  resourceType: 'Observation',
  status: 'final',
  code: { coding: [{ system: 'http://loinc.org', code: '8867-4' }] },
  subject: { reference: `Patient/${patient}` },
  valueQuantity: { value: 72, unit: '/min' },
});

/** Versions newer than the patient's own that are all another patient's. */
const OTHERS = 1100;

/**
 * Type and system history for a patient-scoped token: its patient's versions are few among
 * many others', and the SQL leaves the others' out, so that a page is full in one read. Filtered
 * only once read and decrypted, a page read up to 10 times (~900 rows) and still came back
 * short, or empty with a next link.
 */
describe('history for a patient-scoped token', () => {
  let testApp: TestApp;
  let fhir: string;
  let doctor: HttpFn;
  let app: HttpFn;
  const started = new Date(Date.now() - 1000).toISOString();
  const mine: string[] = [];
  let a = '';

  const create = async (body: Record<string, unknown>): Promise<string> => {
    const res = await doctor('POST', `${fhir}/${String(body['resourceType'])}`, { body });
    expect(res.status).toBe(201);
    return res.body.id as string;
  };

  beforeAll(async () => {
    testApp = await createTestApp();
    fhir = `${testApp.url}/fhir`;
    const doctorToken = await tokenFor(testApp, 'doctor');
    doctor = authorizedHttp(doctorToken);
    a = await create(buildPatient());
    const b = await create(buildPatient());
    for (let i = 0; i < 3; i++) mine.push(await create(observation(a)));
    // A record of A's restricted, and one of A's moved to B: neither is listed.
    const restricted = await create(observation(a));
    const current = (await doctor('GET', `${fhir}/Observation/${restricted}`)).body;
    const labelled = {
      ...current,
      meta: {
        security: [
          { system: 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality', code: 'R' },
        ],
      },
    };
    expect(
      (await doctor('PUT', `${fhir}/Observation/${restricted}`, { body: labelled })).status,
    ).toBe(200);
    const moved = await create(observation(a));
    const body = {
      ...(await doctor('GET', `${fhir}/Observation/${moved}`)).body,
      subject: { reference: `Patient/${b}` },
    };
    expect((await doctor('PUT', `${fhir}/Observation/${moved}`, { body })).status).toBe(200);
    for (let done = 0; done < OTHERS; done += 250) {
      const entry = Array.from({ length: Math.min(250, OTHERS - done) }, () => ({
        request: { method: 'POST', url: 'Observation' },
        resource: observation(b),
      }));
      const res = await doctor('POST', fhir, {
        body: { resourceType: 'Bundle', type: 'batch', entry },
      });
      expect(res.status).toBe(200);
    }
    app = await scopedHttp(testApp, doctorToken, 'patient/*.rs', a);
  }, 600_000);

  afterAll(async () => {
    await testApp.close();
  });

  it.each([
    ['Observation/_history', false],
    ['_history', true],
  ])('fills a page of %s in one read', async (path, withPatient) => {
    const repository = testApp.app.get(ResourceRepository);
    const reads = jest.spyOn(repository, 'historyOfTypes');
    try {
      const res = await app('GET', `${fhir}/${path}?_since=${started}&_count=2`);
      expect(res.status).toBe(200);
      const entries = (res.body.entry ?? []) as { resource?: { id: string } }[];
      const ids = entries.map((e) => e.resource?.id);
      expect(ids).toEqual([mine[2], mine[1]]);
      const links = res.body.link as { relation: string; url: string }[];
      const next = links.find((l) => l.relation === 'next')?.url;
      expect(next).toBeDefined();
      expect(reads).toHaveBeenCalledTimes(1);
      // The next page holds the last of A's, and nothing after it.
      const second = await app('GET', next!);
      expect(second.status).toBe(200);
      expect(
        ((second.body.entry ?? []) as { resource?: { id: string } }[]).map((e) => e.resource?.id),
      ).toEqual(withPatient ? [mine[0], a] : [mine[0]]);
      expect((second.body.link as { relation: string }[]).some((l) => l.relation === 'next')).toBe(
        false,
      );
    } finally {
      reads.mockRestore();
    }
  });
});
