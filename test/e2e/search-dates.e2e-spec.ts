import { randomUUID } from 'node:crypto';
import { buildPatient } from '../support/factories.js';
import { tokenFor } from '../support/auth.js';
import { authorizedHttp, type HttpFn, createResource } from '../support/http.js';
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

  const create = (body: Record<string, unknown>) => createResource(http, fhir, body);

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

  it('reads a UTC offset whose + came unencoded (a space once decoded) as the offset', async () => {
    // 2024-03-01T00:30:00+14:00 is 2024-02-29T10:30:00Z; the -12:00 one is 2024-03-02T11:30Z.
    // Coded apart, so that the other tests' searches of March 2024 do not find them.
    const offsets = `${code}-offsets`;
    const coded = (effectiveDateTime: string) => ({
      ...observation({ effectiveDateTime }),
      code: { coding: [{ system: 'urn:test', code: offsets }] },
    });
    const east = await create(coded('2024-03-01T00:30:00+14:00'));
    const west = await create(coded('2024-03-01T23:30:00-12:00'));
    const found = async (query: string): Promise<string[]> => {
      const res = await http('GET', `${fhir}/Observation?code=urn:test|${offsets}&${query}`);
      expect(res.status).toBe(200);
      return ((res.body.entry ?? []) as { resource: { id: string } }[])
        .map((entry) => entry.resource.id)
        .sort();
    };
    expect(await found('date=2024-03-01T00:30:00+14:00')).toEqual([east]);
    expect(await found('date=2024-03-01T00:30:00%2B14:00')).toEqual([east]);
    expect(
      await found('date=ge2024-03-01T00:30:00+14:00&date=le2024-03-01T23:30:00-12:00'),
    ).toEqual([east, west].sort());
    expect(await found('date=gt2024-03-01T00:30:00+14:00&date=lt2024-03-03')).toEqual([west]);
    const since = await http(
      'GET',
      `${fhir}/Observation/${east}/_history?_since=2024-01-01T00:00:00+14:00`,
    );
    expect([since.status, since.body.total]).toEqual([200, 1]);
    const at = await http(
      'GET',
      `${fhir}/Observation/${east}/_history?_at=ge2024-01-01T00:00:00+14:00`,
    );
    expect([at.status, at.body.total]).toEqual([200, 1]);
    // A space anywhere else is no offset: still a 400.
    const res = await http('GET', `${fhir}/Observation?date=2024-03-01 00:30:00`);
    expect(res.status).toBe(400);
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

  it('finds a Period of a date and a time on that day by both, though the time is earlier in UTC', async () => {
    // Ends 2024-03-01T20:00:00Z, before the start's day begins in UTC: valid, as per-1 compares
    // a date by its calendar day. Coded apart from the other tests' Observations of March 2024.
    const sameDay = `${code}-same-day`;
    const period = await create({
      ...observation({
        effectivePeriod: { start: '2024-03-02', end: '2024-03-02T01:00:00+05:00' },
      }),
      code: { coding: [{ system: 'urn:test', code: sameDay }] },
    });
    const found = async (query: string): Promise<string[]> => {
      const res = await http('GET', `${fhir}/Observation?code=urn:test|${sameDay}&${query}`);
      expect(res.status).toBe(200);
      return ((res.body.entry ?? []) as { resource: { id: string } }[]).map((e) => e.resource.id);
    };
    expect(await found('date=lt2024-03-02')).toEqual([period]);
    expect(await found('date=ge2024-03-02')).toEqual([period]);
    expect(await found('date=2024-03-01')).toEqual([]);
  });
});
