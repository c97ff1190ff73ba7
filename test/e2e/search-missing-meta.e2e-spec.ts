import { buildPatient } from '../support/factories.js';
import { tokenFor } from '../support/auth.js';
import { authorizedHttp, type HttpFn } from '../support/http.js';
import { createTestApp, type TestApp } from '../support/test-app.js';

/**
 * `:missing` is defined for every search parameter type (R4 search.html#modifiers), so for the
 * `_id` and `_lastUpdated` that the CapabilityStatement declares on every type too: every
 * resource has both, so `:missing=true` finds none and `:missing=false` finds all.
 */
describe('FHIR search: :missing on _id and _lastUpdated', () => {
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

  it('finds none with :missing=true and every one with :missing=false', async () => {
    const family = `Missing${Date.now()}`;
    for (let i = 0; i < 2; i++) {
      const created = await http('POST', `${fhir}/Patient`, { body: buildPatient({ family }) });
      expect(created.status).toBe(201);
    }
    for (const param of ['_id', '_lastUpdated']) {
      const none = await http('GET', `${fhir}/Patient?family=${family}&${param}:missing=true`);
      expect(none.status).toBe(200);
      expect(none.body.entry).toBeUndefined();
      const all = await http('GET', `${fhir}/Patient?family=${family}&${param}:missing=false`);
      expect(all.status).toBe(200);
      expect(all.body.entry).toHaveLength(2);
      const bad = await http('GET', `${fhir}/Patient?family=${family}&${param}:missing=maybe`);
      expect(bad.status).toBe(400);
    }
  });
});
