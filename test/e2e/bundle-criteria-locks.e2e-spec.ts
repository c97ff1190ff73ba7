import { doctorApp } from '../support/doctor-app.js';
import type { HttpFn } from '../support/http.js';
import type { TestApp } from '../support/test-app.js';

describe('transaction Bundles: the locks their conditional criteria take', () => {
  let testApp: TestApp;
  let http: HttpFn;
  let fhir: string;

  beforeAll(async () => {
    ({ testApp, http, fhir } = await doctorApp());
  });

  afterAll(async () => {
    await testApp.close();
  });

  it("refuses more criteria than PostgreSQL's shared lock table holds with 400, not a 503 to retry", async () => {
    // Each conditional reference's criteria take an advisory lock until commit, in the lock
    // table every session shares (64 × max_connections slots by default): 19,000 of them ran it
    // out ("out of shared memory"), answered 503 "retry later", which fails every time, while
    // other sessions' locks failed with it.
    const list = (count: number) => ({
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [
        {
          resource: {
            resourceType: 'List',
            status: 'current',
            mode: 'working',
            entry: Array.from({ length: count }, (_, i) => ({
              item: { reference: `Patient?identifier=lock-${i}` },
            })),
          },
          request: { method: 'POST', url: 'List' },
        },
      ],
    });
    const refused = await http('POST', fhir, { body: list(19_000) });
    expect([refused.status, refused.body.issue?.[0]?.code]).toEqual([400, 'too-costly']);
    expect(refused.body.issue[0].diagnostics).toContain('2000');
    expect(refused.body.issue[0].diagnostics).not.toContain('lock-1');
    // Within the limit, the criteria are searched: none matches, a 404 naming the element.
    const searched = await http('POST', fhir, { body: list(1_500) });
    expect([searched.status, searched.body.issue?.[0]?.code]).toEqual([404, 'not-found']);
  });
});
