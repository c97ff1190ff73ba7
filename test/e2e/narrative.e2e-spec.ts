import { buildPatient } from '../support/factories.js';
import { tokenFor } from '../support/auth.js';
import { authorizedHttp, type HttpFn } from '../support/http.js';
import { createTestApp, type TestApp } from '../support/test-app.js';

const div = (inner: string) => `<div xmlns="http://www.w3.org/1999/xhtml">${inner}</div>`;

/**
 * A narrative is XHTML a client renders: R4's txt-1 allows no script in it (stored XSS). Until
 * 2026-12-05 a Patient whose `text.div` held `<script>` was stored with a 201.
 */
describe('FHIR REST: narratives with scripts are refused', () => {
  let testApp: TestApp;
  let http: HttpFn;
  let fhir: string;

  beforeAll(async () => {
    testApp = await createTestApp();
    http = authorizedHttp(await tokenFor(testApp, 'doctor'));
    fhir = `${testApp.url}/fhir`;
  });

  afterAll(async () => {
    await testApp.close();
  });

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
