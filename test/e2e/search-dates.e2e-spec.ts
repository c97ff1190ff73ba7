import { randomUUID } from 'node:crypto';
import { buildPatient } from '../support/factories.js';
import { tokenFor } from '../support/auth.js';
import { authorizedHttp, type HttpFn } from '../support/http.js';
import { createTestApp, type TestApp } from '../support/test-app.js';

/** Dates as R4 writes them, and the searches that must find them. */
describe('FHIR dates on write and in search', () => {
  let testApp: TestApp;
  let fhir: string;
  let http: HttpFn;
  let patient: string;
  // A code unique to this run, so other suites' data on the shared database cannot match.
  const code = `dates-${randomUUID().slice(0, 8)}`;

  const observation = (effective: Record<string, unknown>) => ({
    resourceType: 'Observation',
    status: 'final',
    code: { coding: [{ system: 'urn:test', code }] },
    subject: { reference: `Patient/${patient}` },
    ...effective,
  });

  async function create(body: Record<string, unknown>): Promise<string> {
    const res = await http('POST', `${fhir}/${String(body['resourceType'])}`, { body });
    expect([res.status, res.body?.issue]).toEqual([201, undefined]);
    return res.body.id as string;
  }

  async function found(query: string): Promise<string[]> {
    const res = await http('GET', `${fhir}/Observation?code=urn:test|${code}&${query}`);
    expect(res.status).toBe(200);
    return ((res.body.entry ?? []) as { resource: { id: string } }[])
      .map((entry) => entry.resource.id)
      .sort();
  }

  beforeAll(async () => {
    testApp = await createTestApp();
    fhir = `${testApp.url}/fhir`;
    http = authorizedHttp(await tokenFor(testApp, 'doctor'));
    patient = await create(buildPatient({ family: 'Dates', given: 'Ada' }));
  });

  afterAll(async () => {
    await testApp.close();
  });

  it('refuses a date, dateTime or instant R4 does not allow with a 400 naming the element, not the value', async () => {
    const refused = async (body: Record<string, unknown>, bad: string) => {
      const res = await http('POST', `${fhir}/${String(body['resourceType'])}`, { body });
      expect(res.status).toBe(400);
      expect(res.text).not.toContain(bad);
      return (res.body.issue as { expression?: string[] }[]).map((issue) => issue.expression);
    };
    for (const bad of [
      '2024-03-01T10',
      '2024-03-01T10Z',
      '2024-03-01T10+01:00',
      '2024-03-01Z',
      '2024-03-01+05:00',
      '2024-03-01-',
      '2024-03-01T10:00:00-',
      '2024-03-01T10:00:00+',
      '2024-03-01T10:00:00',
    ]) {
      expect([bad, await refused(observation({ effectiveDateTime: bad }), bad)]).toEqual([
        bad,
        [['Observation.effective[x]']],
      ]);
    }
    const deceased = buildPatient({ family: 'Dates', given: 'Bo' });
    expect(await refused({ ...deceased, deceasedDateTime: '2024-03-01T10' }, 'T10')).toEqual([
      ['Patient.deceased[x]'],
    ]);
    const encounter = (period: Record<string, string>) => ({
      resourceType: 'Encounter',
      status: 'finished',
      class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' },
      period,
    });
    expect(
      await refused(encounter({ start: '2024-03-01T10:00:00Z', end: '2024-03-01T11' }), 'T11'),
    ).toEqual([['Encounter.period.end']]);
    expect(
      await refused(encounter({ start: '2024-03-01T10', end: '2024-03-01T11:00:00Z' }), 'T10'),
    ).toEqual([['Encounter.period.start']]);
    expect(await found('date:missing=true')).toEqual([]);
  });

  it('stores a leap second and finds it in the last millisecond of its minute', async () => {
    const leap = await create(observation({ effectiveDateTime: '2016-12-31T23:59:60Z' }));
    expect(await found('date=2016-12-31')).toEqual([leap]);
    expect(await found('date=2016-12-31T23:59:59Z')).toEqual([leap]);
    expect(await found('date=ge2017-01-01')).toEqual([]);
  });

  it('finds a Timing by its outer limits (events, repeat.boundsPeriod)', async () => {
    const events = await create(
      observation({ effectiveTiming: { event: ['2024-05-10T09:00:00Z', '2024-05-12T09:00:00Z'] } }),
    );
    const bounded = await create(
      observation({
        effectiveTiming: {
          repeat: {
            boundsPeriod: { start: '2024-05-01', end: '2024-05-31' },
            frequency: 2,
            period: 1,
            periodUnit: 'd',
          },
        },
      }),
    );
    expect(await found('date=2024-05')).toEqual([bounded, events].sort());
    expect(await found('date=gt2024-05-11')).toEqual([bounded, events].sort());
    expect(await found('date=gt2024-05-20')).toEqual([bounded]);
    expect(await found('date=lt2024-05-05&date=ge2024')).toEqual([bounded]);
    expect(await found('date:missing=true')).toEqual([]);
    const order = await create({
      resourceType: 'ServiceRequest',
      status: 'active',
      intent: 'order',
      code: { coding: [{ system: 'urn:test', code }] },
      subject: { reference: `Patient/${patient}` },
      occurrenceTiming: { event: ['2024-05-10T09:00:00Z'] },
    });
    const res = await http(
      'GET',
      `${fhir}/ServiceRequest?code=urn:test|${code}&occurrence=2024-05`,
    );
    expect((res.body.entry as { resource: { id: string } }[]).map((e) => e.resource.id)).toEqual([
      order,
    ]);
  });

  it('refuses a Period that ends before it starts, and takes one that ends in its last month', async () => {
    const reversed = observation({ effectivePeriod: { start: '2024-03-05', end: '2024-03-01' } });
    const res = await http('POST', `${fhir}/Observation`, { body: reversed });
    expect(res.status).toBe(400);
    expect(res.body.issue).toEqual([
      expect.objectContaining({ expression: ['Observation.effective[x]'] }),
    ]);
    const month = await create(
      observation({ effectivePeriod: { start: '2024-03-01', end: '2024-03' } }),
    );
    expect(await found('date=2024-03')).toEqual([month]);
  });
});
