import { buildPatient } from '../support/factories.js';
import { tokenFor } from '../support/auth.js';
import { authorizedHttp, type HttpFn } from '../support/http.js';
import { createTestApp, type TestApp } from '../support/test-app.js';

/**
 * The CapabilityStatement names R4's Resource-validate for every type, which is invoked on the
 * type and on an instance (`POST /fhir/{type}/{id}/$validate`: would this body be a valid
 * update of that resource).
 */
describe('FHIR REST: $validate on an instance', () => {
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

  it('declares Resource-validate, whose definition is for instances too', async () => {
    const metadata = await http('GET', `${fhir}/metadata`);
    const patient = metadata.body.rest[0].resource.find(
      (r: { type: string }) => r.type === 'Patient',
    );
    expect(patient.operation).toContainEqual(
      expect.objectContaining({
        name: 'validate',
        definition: 'http://hl7.org/fhir/OperationDefinition/Resource-validate',
      }),
    );
  });

  it('validates a body as an update of the resource at the URL, storing nothing', async () => {
    const created = await http('POST', `${fhir}/Patient`, { body: buildPatient() });
    expect(created.status).toBe(201);
    const id = created.body.id as string;
    const validate = (body: unknown) => http('POST', `${fhir}/Patient/${id}/$validate`, { body });

    const ok = await validate({ ...created.body, active: false });
    expect(ok.status).toBe(200);
    expect(ok.body).toMatchObject({
      resourceType: 'OperationOutcome',
      issue: [{ severity: 'information', diagnostics: 'All OK' }],
    });

    const bad = await validate({ ...created.body, gender: 'f' });
    expect(bad.status).toBe(200);
    expect(bad.body.issue).toEqual([
      expect.objectContaining({ severity: 'error', expression: ['Patient.gender'] }),
    ]);

    const otherId = await validate({ ...created.body, id: 'another-id' });
    expect(otherId.status).toBe(200);
    expect(otherId.body.issue).toEqual([
      expect.objectContaining({ severity: 'error', expression: ['Patient.id'] }),
    ]);

    const asParameters = await validate({
      resourceType: 'Parameters',
      parameter: [
        { name: 'resource', resource: { ...created.body, active: false } },
        { name: 'mode', valueCode: 'update' },
      ],
    });
    expect(asParameters.body.issue[0].diagnostics).toBe('All OK');

    const read = await http('GET', `${fhir}/Patient/${id}`);
    expect(read.body.meta.versionId).toBe('1');
    expect(read.body.active).toBe(true);
  });
});
