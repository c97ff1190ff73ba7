import { tokenFor } from './auth.js';
import { authorizedHttp, type HttpFn } from './http.js';
import { createTestApp, type TestApp } from './test-app.js';

/** The application on a free port, with a doctor's client and its FHIR base URL. */
export async function doctorApp(): Promise<{ testApp: TestApp; http: HttpFn; fhir: string }> {
  const testApp = await createTestApp();
  const http = authorizedHttp(await tokenFor(testApp, 'doctor'));
  return { testApp, http, fhir: `${testApp.url}/fhir` };
}
