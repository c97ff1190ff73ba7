import { randomUUID } from 'node:crypto';
import { buildPatient } from '../support/factories.js';
import { doctorApp } from '../support/doctor-app.js';
import type { HttpFn } from '../support/http.js';
import type { TestApp } from '../support/test-app.js';

/**
 * What one search may ask of the server: each cap is a 400 `too-costly` that names it, where
 * a careless or hostile client's search held a connection, and the 2-core server, for seconds.
 */
describe('Search costs', () => {
  let testApp: TestApp;
  let http: HttpFn;
  let fhir: string;
  const run = randomUUID().slice(0, 6);
  let patient = '';

  beforeAll(async () => {
    ({ testApp, http, fhir } = await doctorApp());
    const created = await http('POST', `${fhir}/Patient`, {
      body: buildPatient({ family: `Costly${run}`, mrn: `MRN-COST-${run}` }),
    });
    expect(created.status).toBe(201);
    patient = created.body.id as string;
    for (const second of ['01', '02', '03']) {
      const observation = await http('POST', `${fhir}/Observation`, {
        body: {
          resourceType: 'Observation',
          status: 'final',
          code: { coding: [{ system: 'http://loinc.org', code: `cost-${run}` }] },
          subject: { reference: `Patient/${patient}` },
          effectiveDateTime: `2024-01-01T00:00:${second}Z`,
        },
      });
      expect(observation.status).toBe(201);
    }
  });

  afterAll(async () => {
    await testApp.close();
  });

  function refusal(res: {
    status: number;
    body: { issue?: { code: string; diagnostics: string }[] };
  }) {
    expect(res.status).toBe(400);
    return res.body.issue?.[0];
  }

  it('sorts by at most 5 keys: 200 keys took a minute of the database for a next page, 1,500 were a 500', async () => {
    const sort = (n: number) => Array.from({ length: n }, () => '-date').join(',');
    const five = await http(
      'GET',
      `${fhir}/Observation?subject=${patient}&_count=1&_sort=${sort(5)}`,
    );
    expect(five.status).toBe(200);
    const next = five.body.link.find((l: { relation: string }) => l.relation === 'next');
    expect((await http('GET', next.url as string)).status).toBe(200);
    for (const n of [6, 1500]) {
      const res = await http('GET', `${fhir}/Observation?subject=${patient}&_sort=${sort(n)}`);
      expect(refusal(res)).toMatchObject({
        code: 'too-costly',
        diagnostics: `_sort takes at most 5 keys; this one has ${n}`,
      });
    }
  });

  it('takes at most 10 _include and _revinclude values together: 300 read the same 1,000 resources 300 times', async () => {
    const rev = (n: number) =>
      Array.from({ length: n }, () => '_revinclude=Observation:subject').join('&');
    const ten = await http(
      'GET',
      `${fhir}/Patient?_id=${patient}&${rev(5)}&${Array.from({ length: 5 }, () => '_include=Patient:general-practitioner').join('&')}`,
    );
    expect(ten.status).toBe(200);
    expect(ten.body.entry).toHaveLength(4);
    const eleven = await http(
      'GET',
      `${fhir}/Patient?_id=${patient}&${rev(10)}&_include=Patient:organization`,
    );
    expect(refusal(eleven)).toMatchObject({
      code: 'too-costly',
      diagnostics: '_include and _revinclude take at most 10 values together; this search has 11',
    });
    const form = await http('POST', `${fhir}/Patient/_search`, {
      raw: `_id=${patient}&${rev(300)}`,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(refusal(form)).toMatchObject({ code: 'too-costly' });
  });

  it('takes at most 100 _elements: 20,000 in a form held the event loop for seconds', async () => {
    const elements = (n: number) => Array.from({ length: n }, (_, i) => `e${i}`).join(',');
    const hundred = await http(
      'GET',
      `${fhir}/Observation?subject=${patient}&_elements=status,${elements(99)}`,
    );
    expect(hundred.status).toBe(200);
    expect(hundred.body.entry[0].resource.status).toBe('final');
    const form = await http('POST', `${fhir}/Observation/_search`, {
      raw: `subject=${patient}&_elements=${elements(20_000)}`,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(refusal(form)).toMatchObject({
      code: 'too-costly',
      diagnostics: '_elements takes at most 100 element names; this one has 20000',
    });
  });

  it('refuses a search of more than 300 index lookups: chains to every type, and ne values, multiply them', async () => {
    // One chain through a reference to any resource reaches every type with the parameter.
    expect((await http('GET', `${fhir}/Provenance?target.identifier=x-${run}`)).status).toBe(200);
    const named = Array.from({ length: 20 }, (_, i) => `item:Patient.identifier=x${i}`);
    expect((await http('GET', `${fhir}/List?${named.join('&')}`)).status).toBe(200);
    const unnamed = Array.from({ length: 20 }, (_, i) => `item.identifier=x${i}`);
    const ne = Array.from({ length: 100 }, (_, i) => `ne${1001 + i}`).join(',');
    for (const query of [
      `List?${unnamed.slice(0, 2).join('&')}`,
      `List?${unnamed.join('&')}`,
      `Patient?birthdate=${ne}&birthdate=${ne}`,
    ]) {
      expect(refusal(await http('GET', `${fhir}/${query}`))).toMatchObject({
        code: 'too-costly',
        diagnostics: expect.stringMatching(
          /^A search takes at most 300 index lookups \(a criterion, each type a chain reaches, each ne value\); this one needs \d+/,
        ),
      });
    }
    expect((await http('GET', `${fhir}/Patient?birthdate=${ne}`)).status).toBe(200);
  });

  it('expands :in to at most 10,000 codes a search, each once a criterion: 20 criteria of 100 repeated value sets took 12 s', async () => {
    const ucum = 'http://hl7.org/fhir/ValueSet/ucum-common'; // 1,363 codes
    const repeated = Array.from({ length: 100 }, () => ucum).join(',');
    expect((await http('GET', `${fhir}/Observation?code:in=${repeated}`)).status).toBe(200);
    const criteria = (n: number) => Array.from({ length: n }, () => `code:in=${ucum}`).join('&');
    expect((await http('GET', `${fhir}/Observation?${criteria(7)}`)).status).toBe(200);
    // A chain expands the value sets for each type it reaches.
    for (const query of [`Observation?${criteria(8)}`, `List?item.code:in=${ucum}`]) {
      expect(refusal(await http('GET', `${fhir}/${query}`))).toMatchObject({
        code: 'too-costly',
        diagnostics: expect.stringMatching(
          /^The :in and :not-in criteria of a search expand to at most 10000 codes together \(a chain's for each type it reaches\); this one has \d+: name fewer value sets, or the type of a chain$/,
        ),
      });
    }
  });
  it('takes at most 100 searches in one Bundle: 2,000 _summary=count searches held a connection for 86 s', async () => {
    const bundle = (type: string, n: number, url: (i: number) => string) => ({
      resourceType: 'Bundle',
      type,
      entry: Array.from({ length: n }, (_, i) => ({ request: { method: 'GET', url: url(i) } })),
    });
    const search = (i: number) => `Observation?subject=${patient}&_summary=count&code=c${i}`;
    const hundred = await http('POST', fhir, { body: bundle('batch', 100, search) });
    expect(hundred.status).toBe(200);
    expect(hundred.body.entry).toHaveLength(100);
    expect(hundred.body.entry[99].response.status).toBe('200 OK');
    // Reads of one resource are not searches; histories, $everything and $lastn are.
    const reads = await http('POST', fhir, {
      body: bundle('batch', 150, () => `Patient/${patient}`),
    });
    expect(reads.status).toBe(200);
    const kinds = [
      search,
      () => `Patient/${patient}/Observation?_summary=count`,
      () => `Patient/${patient}/_history`,
      () => 'Observation/_history?_count=1',
      () => `Patient/${patient}/$everything?_count=1`,
      () => `Observation/$lastn?subject=${patient}`,
    ];
    for (const type of ['batch', 'transaction']) {
      for (const kind of kinds) {
        const res = await http('POST', fhir, { body: bundle(type, 101, kind) });
        expect(refusal(res)).toMatchObject({
          code: 'too-costly',
          diagnostics:
            'A Bundle holds at most 100 searches (GET entries other than the read of a resource or version); this one has 101: send them in several Bundles',
        });
      }
    }
  });
});
