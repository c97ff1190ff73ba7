import { randomUUID } from 'node:crypto';
import { buildPatient } from '../support/factories.js';
import type { HttpFn } from '../support/http.js';
import { doctorApp } from '../support/doctor-app.js';
import type { TestApp } from '../support/test-app.js';

const MRN_SYSTEM = 'urn:oid:1.2.36.146.595.217.0.1';

/**
 * A conditional create or update whose body does not satisfy its own criteria: stored, it is
 * not what the criteria find, so the same request sent again makes another copy.
 */
describe('conditional writes whose body does not match their criteria', () => {
  let testApp: TestApp;
  let http: HttpFn;
  let fhir: string;

  beforeAll(async () => {
    ({ testApp, http, fhir } = await doctorApp());
  });

  afterAll(async () => {
    await testApp.close();
  });

  function mrns(): { sent: string; criteria: string } {
    const tag = randomUUID().slice(0, 8);
    return { sent: `OWN-${tag}`, criteria: `OTHER-${tag}` };
  }

  async function countWithMrn(mrn: string): Promise<number> {
    const res = await http('GET', `${fhir}/Patient?identifier=${MRN_SYSTEM}|${mrn}`);
    expect(res.status).toBe(200);
    return (res.body.entry ?? []).length;
  }

  function expectRefused(
    outcome: { issue: { diagnostics: string }[] },
    named: string[],
    phi: string[],
  ): void {
    const text = JSON.stringify(outcome);
    for (const name of named) expect(text).toContain(name);
    for (const value of phi) expect(text).not.toContain(value);
  }

  it('refuses If-None-Exist whose body does not match, 400 naming the parameter, storing nothing', async () => {
    const { sent, criteria } = mrns();
    for (let attempt = 0; attempt < 2; attempt++) {
      const res = await http('POST', `${fhir}/Patient`, {
        body: buildPatient({ mrn: sent }),
        headers: { 'if-none-exist': `identifier=${MRN_SYSTEM}|${criteria}&gender=female` },
      });
      expect(res.status).toBe(400);
      expect(res.body.resourceType).toBe('OperationOutcome');
      expectRefused(res.body, ['identifier'], [sent, criteria]);
      // gender matched: only the parameters that did not are named.
      expect(JSON.stringify(res.body)).not.toContain('gender');
    }
    expect(await countWithMrn(sent)).toBe(0);
  });

  it('refuses an If-None-Exist of no criteria, rather than taking it for a plain create', async () => {
    const { sent } = mrns();
    for (const header of ['', '  ']) {
      const res = await http('POST', `${fhir}/Patient`, {
        body: buildPatient({ mrn: sent }),
        headers: { 'if-none-exist': header },
      });
      expect(res.status).toBe(400);
      expect(res.body.issue[0].diagnostics).toMatch(/If-None-Exist/);
    }
    expect(await countWithMrn(sent)).toBe(0);
  });

  it('still creates, then answers the match, when the body matches its If-None-Exist', async () => {
    const { sent } = mrns();
    const statuses: number[] = [];
    for (let attempt = 0; attempt < 2; attempt++) {
      const res = await http('POST', `${fhir}/Patient`, {
        body: buildPatient({ mrn: sent }),
        headers: { 'if-none-exist': `identifier=${MRN_SYSTEM}|${sent}` },
      });
      statuses.push(res.status);
    }
    expect(statuses).toEqual([201, 200]);
    expect(await countWithMrn(sent)).toBe(1);
  });

  it('accepts a body its criteria match as the search normalises them (no system, case, prefix, precision)', async () => {
    const { sent } = mrns();
    const family = `Ünal${sent.slice(4)}`;
    const criteria = [
      `identifier=${sent}`,
      `family=${encodeURIComponent(family.slice(0, 6).toUpperCase())}`,
      'birthdate=1974-12',
    ].join('&');
    const res = await http('POST', `${fhir}/Patient`, {
      body: buildPatient({ mrn: sent, family, birthDate: '1974-12-25' }),
      headers: { 'if-none-exist': criteria },
    });
    expect(res.status).toBe(201);
    expect(await countWithMrn(sent)).toBe(1);
  });

  it('refuses a conditional update that would create what its criteria do not match', async () => {
    const { sent, criteria } = mrns();
    const res = await http('PUT', `${fhir}/Patient?identifier=${MRN_SYSTEM}|${criteria}`, {
      body: buildPatient({ mrn: sent }),
    });
    expect(res.status).toBe(400);
    expectRefused(res.body, ['identifier'], [sent, criteria]);
    expect(await countWithMrn(sent)).toBe(0);
  });

  it('refuses a conditional update that would make its match stop matching, keeping it', async () => {
    const { sent, criteria } = mrns();
    const created = await http('POST', `${fhir}/Patient`, {
      body: buildPatient({ mrn: criteria }),
    });
    expect(created.status).toBe(201);
    const res = await http('PUT', `${fhir}/Patient?identifier=${MRN_SYSTEM}|${criteria}`, {
      body: buildPatient({ mrn: sent }),
    });
    expect(res.status).toBe(400);
    expectRefused(res.body, ['identifier'], [sent, criteria]);
    const read = await http('GET', `${fhir}/Patient/${created.body.id}`);
    expect(read.body.meta.versionId).toBe('1');
    expect(await countWithMrn(criteria)).toBe(1);
  });

  it('still updates and creates by conditional update when the body matches', async () => {
    const { sent } = mrns();
    const url = `${fhir}/Patient?identifier=${MRN_SYSTEM}|${sent}`;
    const first = await http('PUT', url, { body: buildPatient({ mrn: sent }) });
    const second = await http('PUT', url, { body: buildPatient({ mrn: sent, given: 'Bea' }) });
    expect([first.status, second.status]).toEqual([201, 200]);
    expect(second.body.id).toBe(first.body.id);
    expect(await countWithMrn(sent)).toBe(1);
  });

  function bundle(type: 'batch' | 'transaction', sent: string, criteria: string) {
    return {
      resourceType: 'Bundle',
      type,
      entry: [
        {
          fullUrl: `urn:uuid:${randomUUID()}`,
          resource: buildPatient({ mrn: sent }),
          request: {
            method: 'POST',
            url: 'Patient',
            ifNoneExist: `identifier=${MRN_SYSTEM}|${criteria}`,
          },
        },
        {
          resource: buildPatient({ mrn: `${sent}-B` }),
          request: { method: 'PUT', url: `Patient?identifier=${MRN_SYSTEM}|${criteria}-B` },
        },
      ],
    };
  }

  it('fails a transaction whose conditional create does not match its ifNoneExist', async () => {
    const { sent, criteria } = mrns();
    const res = await http('POST', fhir, { body: bundle('transaction', sent, criteria) });
    expect(res.status).toBe(400);
    expectRefused(res.body, ['Bundle.entry[', 'identifier'], [sent, criteria]);
    expect(await countWithMrn(sent)).toBe(0);
    expect(await countWithMrn(`${sent}-B`)).toBe(0);
  });

  it('answers each such batch entry 400, storing neither', async () => {
    const { sent, criteria } = mrns();
    const res = await http('POST', fhir, { body: bundle('batch', sent, criteria) });
    expect(res.status).toBe(200);
    const entries = res.body.entry as { response: { status: string; outcome: unknown } }[];
    expect(entries.map((entry) => entry.response.status.slice(0, 3))).toEqual(['400', '400']);
    for (const entry of entries) {
      expectRefused(entry.response.outcome as never, ['identifier'], [sent, criteria]);
    }
    expect(await countWithMrn(sent)).toBe(0);
    expect(await countWithMrn(`${sent}-B`)).toBe(0);
  });

  it('still runs a transaction whose conditional entries match their criteria, twice as once', async () => {
    const { sent } = mrns();
    const statuses: string[][] = [];
    for (let attempt = 0; attempt < 2; attempt++) {
      const res = await http('POST', fhir, { body: bundle('transaction', sent, sent) });
      expect(res.status).toBe(200);
      statuses.push(
        (res.body.entry as { response: { status: string } }[]).map((entry) =>
          entry.response.status.slice(0, 3),
        ),
      );
    }
    expect(statuses).toEqual([
      ['201', '201'],
      ['200', '200'],
    ]);
    expect(await countWithMrn(sent)).toBe(1);
    expect(await countWithMrn(`${sent}-B`)).toBe(1);
  });

  it('compares criteria naming another entry of the transaction once that entry is written', async () => {
    const { sent } = mrns();
    const patientUrl = `urn:uuid:${randomUUID()}`;
    const body = {
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [
        {
          fullUrl: patientUrl,
          resource: buildPatient({ mrn: sent }),
          request: {
            method: 'POST',
            url: 'Patient',
            ifNoneExist: `identifier=${MRN_SYSTEM}|${sent}`,
          },
        },
        {
          fullUrl: `urn:uuid:${randomUUID()}`,
          resource: {
            resourceType: 'Observation',
            status: 'final',
            code: { coding: [{ system: 'http://loinc.org', code: '8867-4' }] },
            subject: { reference: patientUrl },
          },
          request: {
            method: 'POST',
            url: 'Observation',
            ifNoneExist: `subject=${patientUrl}&code=http://loinc.org|8867-4`,
          },
        },
      ],
    };
    const statuses: string[][] = [];
    for (let attempt = 0; attempt < 2; attempt++) {
      const res = await http('POST', fhir, { body });
      expect([res.status, res.body.issue]).toEqual([200, undefined]);
      statuses.push(
        (res.body.entry as { response: { status: string } }[]).map((entry) =>
          entry.response.status.slice(0, 3),
        ),
      );
    }
    expect(statuses).toEqual([
      ['201', '201'],
      ['200', '200'],
    ]);
  });
});
