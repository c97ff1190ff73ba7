import { buildPatient } from '../support/factories.js';
import { scopedHttp, tokenFor } from '../support/auth.js';
import { authorizedHttp } from '../support/http.js';
import { createTestApp, type TestApp } from '../support/test-app.js';

/**
 * The audit trail is kept apart from the records, and no patient compartment narrows it: each
 * event may name several patients and the staff who treated them. A token confined to one
 * patient reads none of it, whatever its account's role.
 */
describe('the audit trail and a patient-scoped token', () => {
  let testApp: TestApp;
  let fhir: string;
  const ids = { a: '', b: '', event: '' };

  const exchange = (token: string, scope: string, patient?: string) =>
    scopedHttp(testApp, token, scope, patient);

  beforeAll(async () => {
    testApp = await createTestApp();
    fhir = `${testApp.url}/fhir`;
    const doctor = authorizedHttp(await tokenFor(testApp, 'doctor'));
    for (const key of ['a', 'b'] as const) {
      const res = await doctor('POST', `${fhir}/Patient`, { body: buildPatient() });
      expect(res.status).toBe(201);
      ids[key] = res.body.id as string;
    }
    expect((await doctor('GET', `${fhir}/Patient/${ids.b}`)).status).toBe(200);
  });

  afterAll(async () => {
    await testApp.close();
  });

  it.each(['auditor', 'admin'] as const)(
    "lists and reads no event to an %s's token confined to a patient",
    async (role) => {
      const token = await tokenFor(testApp, role);
      const unconfined = authorizedHttp(token);
      const aboutB = await unconfined('GET', `${fhir}/AuditEvent?patient=Patient/${ids.b}`);
      expect(aboutB.status).toBe(200);
      const event = aboutB.body.entry[0].resource.id as string;
      for (const scope of ['patient/*.rs', 'patient/AuditEvent.rs']) {
        const app = await exchange(token, scope, ids.a);
        for (const path of [
          `AuditEvent?patient=Patient/${ids.b}`,
          'AuditEvent',
          `AuditEvent/${event}`,
          `AuditEvent/${event}/_history`,
          `AuditEvent/${event}/_history/1`,
          `Patient/${ids.b}/$audit-trail`,
          `Patient/${ids.a}/$audit-trail`,
        ]) {
          const res = await app('GET', `${fhir}/${path}`);
          expect({ path, status: res.status }).toEqual({ path, status: 403 });
          expect(res.text).not.toContain(ids.b);
        }
      }
      // A user/ scope reads the trail as the role does.
      const staff = await exchange(token, 'user/AuditEvent.rs');
      expect((await staff('GET', `${fhir}/AuditEvent/${event}`)).status).toBe(200);
    },
  );
});
