import { tokenFor } from '../support/auth.js';
import { authorizedHttp, type HttpFn } from '../support/http.js';
import { createTestApp, type TestApp } from '../support/test-app.js';

const GENDER = 'http://hl7.org/fhir/ValueSet/administrative-gender';
const GENDER_SYSTEM = 'http://hl7.org/fhir/administrative-gender';

describe('Terminology: ValueSet/$expand, $validate-code, CodeSystem/$lookup', () => {
  let testApp: TestApp;
  let billing: HttpFn;
  let fhir: string;

  const get = (path: string) => billing('GET', `${fhir}/${path}`);
  const parameter = (body: { parameter: { name: string }[] }, name: string) =>
    body.parameter.find((item) => item.name === name) as Record<string, unknown> | undefined;

  beforeAll(async () => {
    testApp = await createTestApp();
    fhir = `${testApp.url}/fhir`;
    // Any signed-in user: terminology holds no patient data.
    billing = authorizedHttp(await tokenFor(testApp, 'billing'));
  });

  afterAll(async () => {
    await testApp.close();
  });

  it('expands a value set of the definitions, with displays, a filter and paging', async () => {
    const all = await get(`ValueSet/$expand?url=${encodeURIComponent(GENDER)}`);
    expect(all.status).toBe(200);
    expect(all.headers.get('content-type')).toContain('application/fhir+json');
    expect(all.body).toMatchObject({ resourceType: 'ValueSet', url: GENDER });
    expect(all.body.expansion.total).toBe(4);
    expect(all.body.expansion.contains).toContainEqual({
      system: GENDER_SYSTEM,
      code: 'female',
      display: 'Female',
    });
    const filtered = await get(`ValueSet/$expand?url=${encodeURIComponent(GENDER)}&filter=FEM`);
    expect(filtered.body.expansion.contains.map((c: { code: string }) => c.code)).toEqual([
      'female',
    ]);
    const page = await get(`ValueSet/$expand?url=${encodeURIComponent(GENDER)}&offset=1&count=2`);
    expect(page.body.expansion).toMatchObject({ total: 4, offset: 1 });
    expect(page.body.expansion.contains.map((c: { code: string }) => c.code)).toEqual(
      all.body.expansion.contains.slice(1, 3).map((c: { code: string }) => c.code),
    );
    // One that draws on LOINC is a terminology server's job, and says so.
    const loinc = await get(
      `ValueSet/$expand?url=${encodeURIComponent('http://hl7.org/fhir/ValueSet/observation-codes')}`,
    );
    expect(loinc.status).toBe(422);
    expect(loinc.body.issue[0].diagnostics).toMatch(/is not a value set this server can expand/);
    expect((await get('ValueSet/$expand')).status).toBe(400);
    // A version: the one held (url and version apart in the answer), or a 404.
    expect(all.body.version).toBe('4.0.1');
    const held = await get(`ValueSet/$expand?url=${encodeURIComponent(`${GENDER}|4.0.1`)}`);
    expect(held.body).toMatchObject({ url: GENDER, version: '4.0.1' });
    const other = await get(`ValueSet/$expand?url=${encodeURIComponent(`${GENDER}|9.9.9`)}`);
    expect(other.status).toBe(404);
    expect(other.body.issue[0].diagnostics).toBe(
      `Version 9.9.9 of ${GENDER} is not held here: 4.0.1 is`,
    );
  });

  it('takes every operation by POST, with a Parameters body, and codings only so', async () => {
    const post = (path: string, parameter: Record<string, unknown>[]) =>
      billing('POST', `${fhir}/${path}`, { body: { resourceType: 'Parameters', parameter } });
    const expanded = await post('ValueSet/$expand', [
      { name: 'url', valueUri: GENDER },
      { name: 'filter', valueString: 'fem' },
    ]);
    expect(expanded.status).toBe(200);
    expect(expanded.body.expansion.contains.map((c: { code: string }) => c.code)).toEqual([
      'female',
    ]);
    const coding = { system: GENDER_SYSTEM, code: 'male', display: 'Man' };
    const byCoding = await post('ValueSet/$validate-code', [
      { name: 'url', valueUri: GENDER },
      { name: 'coding', valueCoding: coding },
    ]);
    expect(byCoding.status).toBe(200);
    expect(parameter(byCoding.body, 'message')?.['valueString']).toBe(
      'The display for male is "Male", not "Man"',
    );
    // A CodeableConcept is valid when one of its codings is.
    const concept = await post('ValueSet/$validate-code', [
      { name: 'url', valueUri: GENDER },
      {
        name: 'codeableConcept',
        valueCodeableConcept: {
          coding: [
            { system: 'urn:x', code: 'M' },
            { ...coding, display: 'Male' },
          ],
        },
      },
    ]);
    expect(parameter(concept.body, 'result')?.['valueBoolean']).toBe(true);
    const looked = await post('CodeSystem/$lookup', [
      { name: 'coding', valueCoding: { system: GENDER_SYSTEM, code: 'other' } },
    ]);
    expect(parameter(looked.body, 'display')?.['valueString']).toBe('Other');
    for (const [path, body] of [
      ['ValueSet/$expand', { resourceType: 'Patient' }],
      ['ValueSet/$expand', { resourceType: 'Parameters', parameter: [{ name: 'url' }] }],
      [
        'CodeSystem/$lookup',
        { resourceType: 'Parameters', parameter: [{ name: 'system', valueCoding: coding }] },
      ],
      // A CodeableConcept whose coding is no list, a Coding that is no object: 500s at first.
      [
        'ValueSet/$validate-code',
        {
          resourceType: 'Parameters',
          parameter: [
            { name: 'url', valueUri: GENDER },
            { name: 'codeableConcept', valueCodeableConcept: { coding: 'male' } },
          ],
        },
      ],
      [
        'CodeSystem/$lookup',
        { resourceType: 'Parameters', parameter: [{ name: 'coding', valueCoding: 'male' }] },
      ],
    ] as const) {
      const refused = await billing('POST', `${fhir}/${path}`, { body });
      expect({ path, body, status: refused.status }).toEqual({ path, body, status: 400 });
    }
    // Names an object inherits are names like others: __proto__ is unknown to $expand, and
    // ignored as a query's unknown names are.
    const inherited = await post('ValueSet/$expand', [
      { name: 'url', valueUri: GENDER },
      { name: '__proto__', valueString: 'x' },
      { name: 'toString', valueString: 'x' },
    ]);
    expect(inherited.status).toBe(200);
  });

  it('validates a code against a value set, display included', async () => {
    const url = encodeURIComponent(GENDER);
    const system = encodeURIComponent(GENDER_SYSTEM);
    const valid = await get(`ValueSet/$validate-code?url=${url}&system=${system}&code=male`);
    expect(parameter(valid.body, 'result')).toEqual({ name: 'result', valueBoolean: true });
    expect(parameter(valid.body, 'display')?.['valueString']).toBe('Male');
    const wrong = await get(`ValueSet/$validate-code?url=${url}&code=M`);
    expect(parameter(wrong.body, 'result')?.['valueBoolean']).toBe(false);
    expect(parameter(wrong.body, 'message')?.['valueString']).toBe(
      `M is not in the value set ${GENDER}`,
    );
    const display = await get(
      `ValueSet/$validate-code?url=${url}&system=${system}&code=male&display=Man`,
    );
    expect(parameter(display.body, 'result')?.['valueBoolean']).toBe(false);
    expect(parameter(display.body, 'message')?.['valueString']).toBe(
      'The display for male is "Male", not "Man"',
    );
  });

  it('looks up a code of a v3 code system, and says when it cannot', async () => {
    const actCode = encodeURIComponent('http://terminology.hl7.org/CodeSystem/v3-ActCode');
    const found = await get(`CodeSystem/$lookup?system=${actCode}&code=AMB`);
    expect(found.status).toBe(200);
    expect(parameter(found.body, 'display')?.['valueString']).toBe('ambulatory');
    expect(parameter(found.body, 'name')?.['valueString']).toBe('v3.ActCode');
    expect((await get(`CodeSystem/$lookup?system=${actCode}&code=NOPE`)).status).toBe(404);
    const loinc = await get(
      `CodeSystem/$lookup?system=${encodeURIComponent('http://loinc.org')}&code=2345-7`,
    );
    expect(loinc.status).toBe(404);
    expect(loinc.body.issue[0].diagnostics).toMatch(
      /is not a code system whose codes this server holds/,
    );
  });
});
