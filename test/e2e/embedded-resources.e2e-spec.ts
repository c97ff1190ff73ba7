import { randomUUID } from 'node:crypto';
import type { HttpFn } from '../support/http.js';
import { doctorApp } from '../support/doctor-app.js';
import type { TestApp } from '../support/test-app.js';

/**
 * Resources held inside others (contained, a Bundle's entries, a Parameters' values) are
 * resources: each names a concrete R4 resource type and has a FHIR id. The validator reads
 * their type from their own `resourceType`, so until 2026-12-07 a HumanName, an abstract
 * DomainResource or an object with no type at all was validated as that and stored.
 */
describe('FHIR: resources inside resources', () => {
  let testApp: TestApp;
  let http: HttpFn;
  let fhir: string;

  beforeAll(async () => {
    ({ testApp, http, fhir } = await doctorApp());
  });

  afterAll(async () => {
    await testApp.close();
  });

  /** An Observation whose focus is its one contained resource. */
  function observationContaining(contained: Record<string, unknown>, reference = '#c1') {
    return {
      resourceType: 'Observation',
      status: 'final',
      code: { text: `embedded ${randomUUID()}` },
      contained: [contained],
      focus: [{ reference }],
    };
  }

  it('refuses a contained resource that is a data type, abstract or of no type', async () => {
    for (const [contained, expression] of [
      [{ resourceType: 'HumanName', id: 'c1', family: 'Embedded' }, 'Observation.contained[0]'],
      [{ resourceType: 'DomainResource', id: 'c1' }, 'Observation.contained[0]'],
      [{ resourceType: 'Resource', id: 'c1' }, 'Observation.contained[0]'],
      [{ id: 'c1' }, 'Observation.contained[0]'],
    ] as const) {
      const res = await http('POST', `${fhir}/Observation`, {
        body: observationContaining(contained),
      });
      expect({ contained, status: res.status, issue: res.body.issue?.[0] }).toMatchObject({
        contained,
        status: 400,
        issue: { code: 'structure', expression: [expression] },
      });
    }
    const kept = await http('POST', `${fhir}/Observation`, {
      body: observationContaining({ resourceType: 'Medication', id: 'c1' }),
    });
    expect(kept.status).toBe(201);
    expect(kept.body.contained).toEqual([{ resourceType: 'Medication', id: 'c1' }]);
  });

  it('refuses a contained id that is not a FHIR id, on create and on update', async () => {
    const res = await http('POST', `${fhir}/Observation`, {
      body: observationContaining({ resourceType: 'Medication', id: 'c 1' }, '#c 1'),
    });
    expect(res.status).toBe(400);
    expect(res.body.issue[0]).toMatchObject({ expression: ['Observation.contained[0].id'] });
    // The id is the client's text: it is not echoed in the message.
    expect(res.body.issue[0].diagnostics).not.toContain('c 1');

    const id = `embedded-${randomUUID()}`;
    const update = await http('PUT', `${fhir}/Observation/${id}`, {
      body: { ...observationContaining({ resourceType: 'Medication', id: 'c/1' }, '#c/1'), id },
    });
    expect(update.status).toBe(400);
    expect((await http('GET', `${fhir}/Observation/${id}`)).status).toBe(404);
  });

  it("refuses a Bundle entry's resource that is not a resource, and $validate reports one", async () => {
    for (const resource of [{ resourceType: 'HumanName', family: 'Embedded' }, { id: 'q' }]) {
      const res = await http('POST', `${fhir}/Bundle`, {
        body: { resourceType: 'Bundle', type: 'collection', entry: [{ resource }] },
      });
      expect({ resource, status: res.status, issue: res.body.issue?.[0] }).toMatchObject({
        resource,
        status: 400,
        issue: { code: 'structure', expression: ['Bundle.entry[0].resource'] },
      });
    }
    const nested = await http('POST', `${fhir}/Bundle`, {
      body: {
        resourceType: 'Bundle',
        type: 'collection',
        entry: [
          {
            resource: observationContaining({ resourceType: 'Quantity', id: 'c1', value: 1 }),
          },
        ],
      },
    });
    expect(nested.status).toBe(400);
    expect(nested.body.issue[0].expression).toEqual(['Bundle.entry[0].resource.contained[0]']);

    // $validate reads the resource out of a Parameters, and says the same (200, the issues).
    const validated = await http('POST', `${fhir}/Patient/$validate`, {
      body: {
        resourceType: 'Parameters',
        parameter: [
          {
            name: 'resource',
            resource: {
              resourceType: 'Patient',
              contained: [{ resourceType: 'HumanName', id: 'c1', family: 'Embedded' }],
              link: [{ type: 'seealso', other: { reference: '#c1' } }],
            },
          },
        ],
      },
    });
    expect(validated.status).toBe(200);
    expect(validated.body.issue[0]).toMatchObject({
      severity: 'error',
      expression: ['Patient.contained[0]'],
    });
  });

  it('refuses a local reference whose type is not the contained resource it names', async () => {
    const res = await http('POST', `${fhir}/Observation`, {
      body: {
        ...observationContaining({ resourceType: 'Medication', id: 'c1' }),
        focus: [{ reference: '#c1', type: 'Patient' }],
      },
    });
    expect(res.status).toBe(400);
    expect(res.body.issue[0]).toMatchObject({
      code: 'invalid',
      expression: ['Observation.focus[0].reference'],
    });
    const right = await http('POST', `${fhir}/Observation`, {
      body: {
        ...observationContaining({ resourceType: 'Medication', id: 'c1' }),
        focus: [{ reference: '#c1', type: 'Medication' }],
      },
    });
    expect(right.status).toBe(201);
  });
});
