import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { MAX_TYPE_FILTERS } from '../../src/fhir/export/kick-off-parameters.js';
import { createUser, enableMfa, loginWithMfa } from '../support/auth.js';
import { authorizedHttp, createResource, http, type HttpResult } from '../support/http.js';
import { createTestApp, type TestApp } from '../support/test-app.js';

/**
 * A GET kick-off's `_typeFilter` is read from the raw query string (its commas split queries
 * before they are decoded): it must be read there as the query parser reads the query, whatever
 * way its name or value is percent-encoded, or a filter the parser accepted is never checked.
 */
describe('Bulk Data export: _typeFilter as the query string spells it', () => {
  let testApp: TestApp;
  let token: string;
  let authorization: string;
  let db: pg.Client;
  const run = randomUUID().slice(0, 8);
  const ids: Record<string, string> = {};

  const kickOff = (query: string): Promise<HttpResult> =>
    http('GET', `${testApp.url}/fhir/Patient/$export?${query}`, {
      headers: { authorization, prefer: 'respond-async', accept: 'application/fhir+json' },
    });
  const create = (resource: Record<string, unknown>): Promise<string> =>
    createResource(authorizedHttp(token), `${testApp.url}/fhir`, resource);
  /** Cancels a job started by a kick-off that should not have started, so the next may run. */
  const cancel = async (kickedOff: HttpResult): Promise<void> => {
    const status = kickedOff.headers.get('content-location');
    if (status) await http('DELETE', status, { headers: { authorization } });
  };

  beforeAll(async () => {
    testApp = await createTestApp();
    db = new pg.Client({ connectionString: process.env['DATABASE_URL'] });
    await db.connect();
    const doctor = await createUser(testApp, ['doctor']);
    const secret = await enableMfa(testApp, doctor);
    token = (await loginWithMfa(testApp, doctor, secret)).access_token;
    authorization = `Bearer ${token}`;
    ids['patient'] = await create({ resourceType: 'Patient', name: [{ family: `Q-${run}` }] });
    // Another, which a filter on the first leaves out.
    await create({ resourceType: 'Patient', name: [{ family: `R-${run}` }] });
  });

  afterAll(async () => {
    await db.end();
    await testApp.close();
  });

  it('checks a _typeFilter whose name is percent-encoded, rather than ignoring it', async () => {
    const family = `Zqx${run}`;
    const filter = encodeURIComponent(`Patient?family=${family}`);
    for (const name of ['%5FtypeFilter', '_typeFilte%72', '_type%46ilter']) {
      const res = await kickOff(`${name}=${filter}`);
      // Nor is the name kept in plaintext with a job.
      const { rowCount } = await db.query('SELECT 1 FROM export_job WHERE request_url LIKE $1', [
        `%${family}%`,
      ]);
      await cancel(res);
      expect({
        name,
        status: res.status,
        diagnostics: res.body?.issue?.[0]?.diagnostics,
        jobs: rowCount,
      }).toEqual({
        name,
        status: 400,
        diagnostics: expect.stringContaining('may not search direct identifiers (family)'),
        jobs: 0,
      });
    }
  });

  it('applies a _typeFilter whose name is percent-encoded', async () => {
    const filter = encodeURIComponent(`Patient?_id=${ids['patient']}`);
    const kickedOff = await kickOff(`_type=Patient&%5FtypeFilter=${filter}`);
    expect(kickedOff.status).toBe(202);
    const status = kickedOff.headers.get('content-location')!;
    let manifest: { output: { url: string }[] } | undefined;
    for (let attempt = 0; attempt < 200 && !manifest; attempt++) {
      const res = await http('GET', status, { headers: { authorization } });
      if (res.status === 200) manifest = res.body;
      else await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const file = await http('GET', manifest!.output[0]!.url, { headers: { authorization } });
    await cancel(kickedOff);
    const exported = file.text
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => (JSON.parse(line) as { id: string }).id);
    expect(exported).toEqual([ids['patient']]);
  });

  it('refuses more _typeFilter searches than it takes, before running any', async () => {
    const filters = (count: number) =>
      Array.from({ length: count }, (_, n) => ({
        name: '_typeFilter',
        valueString: `Observation?status=final&_id=f${n}`,
      }));
    const post = (count: number) =>
      http('POST', `${testApp.url}/fhir/$export`, {
        headers: {
          authorization,
          prefer: 'respond-async',
          'content-type': 'application/fhir+json',
        },
        body: { resourceType: 'Parameters', parameter: filters(count) },
      });
    const beyond = await post(MAX_TYPE_FILTERS + 1);
    await cancel(beyond);
    expect({ status: beyond.status, code: beyond.body?.issue?.[0]?.code }).toEqual({
      status: 400,
      code: 'too-costly',
    });
    const query = filters(MAX_TYPE_FILTERS + 1)
      .map(({ valueString }) => `_typeFilter=${encodeURIComponent(valueString)}`)
      .join('&');
    const byGet = await kickOff(query);
    await cancel(byGet);
    expect(byGet.status).toBe(400);
    const within = await post(MAX_TYPE_FILTERS);
    await cancel(within);
    expect(within.status).toBe(202);
  });

  it('answers a _typeFilter that is not valid percent-encoding with a 400', async () => {
    const res = await kickOff('_typeFilter=Observation%3Fstatus%3D%ZZ');
    await cancel(res);
    expect({ status: res.status, code: res.body?.issue?.[0]?.code }).toEqual({
      status: 400,
      code: 'invalid',
    });
  });
});
