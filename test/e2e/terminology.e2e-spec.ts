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
