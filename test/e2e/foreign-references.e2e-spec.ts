import { buildPatient } from '../support/factories.js';
import { tokenFor } from '../support/auth.js';
import { withEnv } from '../support/env.js';
import { authorizedHttp, http as plainHttp, type HttpFn } from '../support/http.js';
import { createTestApp, type TestApp } from '../support/test-app.js';

/**
 * Absolute references with PUBLIC_URL set: this server's URL is its resource, another server's
 * Patient/p4 is not this server's p4. Until 2026-12-06 both were read as the local p4: another
 * person's result sat in p4's compartment, $everything and patient-scoped reads, while the
 * `patient` parameter ignored every absolute URL that `subject` found.
 */
describe('References to this server and to others by absolute URL', () => {
  const publicUrl = 'https://ehr.example.org';
  let testApp: TestApp;
  let http: HttpFn;
  let restoreEnv: () => void;
  let fhir: string;
  let patient: string;
  const observations: Record<'relative' | 'own' | 'foreign', string> = {
    relative: '',
    own: '',
    foreign: '',
  };

  beforeAll(async () => {
    restoreEnv = withEnv({ PUBLIC_URL: publicUrl });
    testApp = await createTestApp();
    fhir = `${testApp.url}/fhir`;
    http = authorizedHttp(await tokenFor(testApp, 'doctor'));
    const created = await http('POST', `${fhir}/Patient`, { body: buildPatient() });
    patient = String(created.body.id);
    const subjects = {
      relative: `Patient/${patient}`,
      own: `${publicUrl}/fhir/Patient/${patient}`,
      foreign: `https://other.example/fhir/Patient/${patient}`,
    };
    for (const [kind, reference] of Object.entries(subjects)) {
      const res = await http('POST', `${fhir}/Observation`, {
        body: {
          resourceType: 'Observation',
          status: 'final',
          code: { coding: [{ system: 'http://loinc.org', code: '8867-4' }] },
          subject: { reference },
        },
      });
      expect(res.status).toBe(201);
      observations[kind as keyof typeof observations] = String(res.body.id);
    }
  });

  afterAll(async () => {
    await testApp.close();
    restoreEnv();
  });

  const ids = (bundle: { entry?: { resource: { id: string } }[] }) =>
    (bundle.entry ?? []).map((entry) => entry.resource.id).sort();
  const local = () => [observations.relative, observations.own].sort();

  it("finds this server's patient by subject and patient alike, and never the other server's", async () => {
    for (const query of [
      `subject=Patient/${patient}`,
      `patient=${patient}`,
      `patient=Patient/${patient}`,
      `subject=${publicUrl}/fhir/Patient/${patient}`,
      `patient=${publicUrl}/fhir/Patient/${patient}`,
    ]) {
      const res = await http('GET', `${fhir}/Observation?${query}`);
      expect([query, ids(res.body)]).toEqual([query, local()]);
    }
    const compartment = await http('GET', `${fhir}/Patient/${patient}/Observation`);
    expect(ids(compartment.body)).toEqual(local());
    const everything = await http('GET', `${fhir}/Patient/${patient}/$everything`);
    expect(ids(everything.body)).not.toContain(observations.foreign);
  });

  it("finds the other server's patient by its whole URL, however its host is spelt", async () => {
    for (const query of [
      `subject=https://other.example/fhir/Patient/${patient}`,
      `patient=https://other.example/fhir/Patient/${patient}`,
      `subject=https://Other.Example:443/fhir/Patient/${patient}`,
    ]) {
      const res = await http('GET', `${fhir}/Observation?${query}`);
      expect([query, ids(res.body)]).toEqual([query, [observations.foreign]]);
    }
    // Too long for an index key: refused, where it could not be read as this server's id.
    const long = `https://other.example/${'x'.repeat(1100)}/fhir/Patient/${patient}`;
    expect((await http('GET', `${fhir}/Observation?subject=${long}`)).status).toBe(400);
  });

  it("holds a reference by this server's URL to referential integrity, as a relative one", async () => {
    const observation = (reference: string) => ({
      resourceType: 'Observation',
      status: 'final',
      code: { coding: [{ system: 'http://loinc.org', code: '8867-4' }] },
      subject: { reference },
    });
    for (const [reference, status] of [
      [`${publicUrl}/fhir/Patient/not-stored-here`, 400],
      [`http://EHR.example.org/fhir/Patient/not-stored-here/_history/1`, 400],
      [`https://other.example/fhir/Patient/not-stored-here`, 201],
    ] as const) {
      const res = await http('POST', `${fhir}/Observation`, { body: observation(reference) });
      expect([reference, res.status]).toEqual([reference, status]);
    }
    // Referred to by this server's URL only, a patient is not deleted from under its record.
    const other = String((await http('POST', `${fhir}/Patient`, { body: buildPatient() })).body.id);
    const own = `${publicUrl}/fhir/Patient/${other}`;
    expect((await http('POST', `${fhir}/Observation`, { body: observation(own) })).status).toBe(
      201,
    );
    expect((await http('DELETE', `${fhir}/Patient/${other}`)).status).toBe(409);
  });

  it("keeps the other server's patient's record from this patient's token", async () => {
    const exchanged = await plainHttp('POST', `${testApp.url}/auth/token/scoped`, {
      body: { scope: 'patient/*.rs', patient },
      headers: {
        authorization: `Bearer ${await tokenFor(testApp, 'doctor')}`,
        'content-type': 'application/json',
      },
    });
    expect(exchanged.status).toBe(200);
    const asPatient = authorizedHttp(exchanged.body.access_token as string);
    expect((await asPatient('GET', `${fhir}/Observation/${observations.own}`)).status).toBe(200);
    expect((await asPatient('GET', `${fhir}/Observation/${observations.foreign}`)).status).toBe(
      404,
    );
    const listed = await asPatient('GET', `${fhir}/Observation?code=8867-4`);
    expect(ids(listed.body)).toEqual(local());

    // A Binary whose securityContext is the other server's patient opens to no one here.
    const binary = await http('POST', `${fhir}/Binary`, {
      body: {
        resourceType: 'Binary',
        contentType: 'text/plain',
        data: Buffer.from('other').toString('base64'),
        securityContext: { reference: `https://other.example/fhir/Patient/${patient}` },
      },
    });
    expect(binary.status).toBe(201);
    const binaryId = String(binary.body.id);
    expect((await asPatient('GET', `${fhir}/Binary/${binaryId}`)).status).toBe(404);
    expect(ids((await asPatient('GET', `${fhir}/Binary`)).body)).not.toContain(binaryId);
  });
});
