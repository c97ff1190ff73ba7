import { randomUUID } from 'node:crypto';
import { Client } from 'fhir-kit-client';
import { tokenFor } from '../support/auth.js';
import { createTestApp, type TestApp } from '../support/test-app.js';

/**
 * A real FHIR client, used the way its README shows a new user: fhir-kit-client against
 * CareVault, with a bearer token from /auth/login.
 */
describe('a FHIR client (fhir-kit-client)', () => {
  let testApp: TestApp;
  let client: Client;
  const mrn = `KIT-${randomUUID().slice(0, 8)}`;
  const family = `Valdés-${randomUUID().slice(0, 6)}`;

  beforeAll(async () => {
    testApp = await createTestApp();
    client = new Client({
      baseUrl: `${testApp.url}/fhir`,
      bearerToken: await tokenFor(testApp, 'doctor'),
    });
  });

  afterAll(async () => {
    await testApp.close();
  });

  it('creates patients and observations in a transaction and finds them by name, MRN, birth date and code', async () => {
    const capabilities = (await client.capabilityStatement()) as { resourceType: string };
    expect(capabilities.resourceType).toBe('CapabilityStatement');

    const patientUrn = `urn:uuid:${randomUUID()}`;
    const result = (await client.transaction({
      body: {
        resourceType: 'Bundle',
        type: 'transaction',
        entry: [
          {
            fullUrl: patientUrn,
            resource: {
              resourceType: 'Patient',
              identifier: [{ system: 'urn:oid:2.16.840.1.113883.19.5', value: mrn }],
              name: [{ family, given: ['Lucía'] }],
              birthDate: '1991-07-30',
            },
            request: { method: 'POST', url: 'Patient' },
          },
          ...[7.1, 7.4].map((value) => ({
            fullUrl: `urn:uuid:${randomUUID()}`,
            resource: {
              resourceType: 'Observation',
              status: 'final',
              code: { coding: [{ system: 'http://loinc.org', code: '4548-4' }] },
              subject: { reference: patientUrn },
              valueQuantity: { value, unit: '%', system: 'http://unitsofmeasure.org', code: '%' },
            },
            request: { method: 'POST', url: 'Observation' },
          })),
        ],
      },
      options: { keepalive: false },
    })) as unknown as { entry: { resource: { id: string } }[] };
    const patientId = result.entry[0]!.resource.id;

    const ids = (bundle: unknown): string[] =>
      ((bundle as { entry?: { resource: { id: string } }[] }).entry ?? []).map(
        (e) => e.resource.id,
      );
    expect(
      ids(await client.search({ resourceType: 'Patient', searchParams: { name: family } })),
    ).toEqual([patientId]);
    expect(
      ids(await client.search({ resourceType: 'Patient', searchParams: { identifier: mrn } })),
    ).toEqual([patientId]);
    expect(
      ids(
        await client.search({
          resourceType: 'Patient',
          searchParams: { birthdate: '1991-07-30', family: family.toUpperCase() },
        }),
      ),
    ).toEqual([patientId]);
    // POST search, as the client does for long or sensitive criteria.
    expect(
      ids(
        await client.search({
          resourceType: 'Patient',
          searchParams: { identifier: `urn:oid:2.16.840.1.113883.19.5|${mrn}` },
          options: { postSearch: true },
        }),
      ),
    ).toEqual([patientId]);
    const observations = await client.search({
      resourceType: 'Observation',
      searchParams: {
        code: 'http://loinc.org|4548-4',
        subject: `Patient/${patientId}`,
        _count: '1',
      },
    });
    expect(ids(observations)).toHaveLength(1);
    const next = await client.nextPage({ bundle: observations as never });
    expect(ids(next)).toHaveLength(1);
    expect(ids(next)).not.toEqual(ids(observations));
    const read = (await client.read({ resourceType: 'Patient', id: patientId })) as unknown as {
      birthDate: string;
    };
    expect(read.birthDate).toBe('1991-07-30');
  });

  it('creates, updates, reads versions and history of, and deletes a patient', async () => {
    const created = (await client.create({
      resourceType: 'Patient',
      body: { resourceType: 'Patient', name: [{ family, given: ['Ines'] }], gender: 'female' },
    })) as unknown as { id: string; meta: { versionId: string } };
    expect(created.meta.versionId).toBe('1');

    const updated = (await client.update({
      resourceType: 'Patient',
      id: created.id,
      body: {
        resourceType: 'Patient',
        id: created.id,
        name: [{ family, given: ['Inés', 'María'] }],
        gender: 'female',
        birthDate: '1988-02-29',
      },
      options: { headers: { 'If-Match': 'W/"1"' } },
    })) as unknown as { meta: { versionId: string }; birthDate: string };
    expect(updated.meta.versionId).toBe('2');
    expect(updated.birthDate).toBe('1988-02-29');

    const first = (await client.vread({
      resourceType: 'Patient',
      id: created.id,
      version: '1',
    })) as unknown as { birthDate?: string; name: { given: string[] }[] };
    expect(first.birthDate).toBeUndefined();
    expect(first.name[0]!.given).toEqual(['Ines']);

    const history = (await client.history({
      resourceType: 'Patient',
      id: created.id,
    })) as unknown as {
      type: string;
      entry: { resource: { meta: { versionId: string } } }[];
    };
    expect(history.type).toBe('history');
    expect(history.entry.map((entry) => entry.resource.meta.versionId)).toEqual(['2', '1']);

    await client.delete({ resourceType: 'Patient', id: created.id });
    await expect(client.read({ resourceType: 'Patient', id: created.id })).rejects.toMatchObject({
      response: { status: 410 },
    });
    // A stale If-Match is refused, as the client reports it.
    await expect(
      client.update({
        resourceType: 'Patient',
        id: created.id,
        body: { resourceType: 'Patient', id: created.id },
        options: { headers: { 'If-Match': 'W/"1"' } },
      }),
    ).rejects.toMatchObject({ response: { status: 412 } });
  });
});
