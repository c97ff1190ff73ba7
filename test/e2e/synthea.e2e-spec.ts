import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { DataSource } from 'typeorm';
import { tokenFor } from '../support/auth.js';
import { authorizedHttp, type HttpFn } from '../support/http.js';
import { createTestApp, type TestApp } from '../support/test-app.js';

let http: HttpFn;

/** ../shared/fhir-samples/synthea beside the repository, as CI lays it out. */
const SAMPLES = fileURLToPath(new URL('../../../shared/fhir-samples/synthea/', import.meta.url));
const CONCURRENCY = 8;

interface Entry {
  resource: { resourceType: string; id: string; [key: string]: unknown };
}

async function loadEntries(): Promise<Entry[]> {
  const files = (await readdir(SAMPLES)).filter((file) => file.endsWith('.json')).sort();
  const entries: Entry[] = [];
  for (const file of files) {
    const bundle = JSON.parse(await readFile(`${SAMPLES}${file}`, 'utf8')) as { entry: Entry[] };
    entries.push(...bundle.entry);
  }
  return entries;
}

const describeWithSamples = existsSync(SAMPLES) ? describe : describe.skip;

describeWithSamples('real data: the Synthea sample bundles', () => {
  let testApp: TestApp;

  beforeAll(async () => {
    testApp = await createTestApp();
    http = authorizedHttp(await tokenFor(testApp, 'integration'));
  });

  afterAll(async () => {
    await testApp.close();
  });

  it('validates, stores and returns every resource of every type unchanged, encrypted at rest', async () => {
    const entries = await loadEntries();
    expect(entries.length).toBeGreaterThan(4000);
    const failures: string[] = [];
    const seen = new Set<string>();
    const queue = [...entries];
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        for (let entry = queue.shift(); entry; entry = queue.shift()) {
          const { resourceType, id } = entry.resource;
          const res = await http('PUT', `${testApp.url}/fhir/${resourceType}/${id}`, {
            body: entry.resource,
          });
          // The hospital and practitioner bundles repeat some resources: a second PUT is an update.
          const key = `${resourceType}/${id}`;
          const expected = seen.has(key) ? 200 : 201;
          seen.add(key);
          if (res.status !== expected) {
            failures.push(
              `${resourceType}/${id}: ${res.status} ${JSON.stringify(res.body?.issue?.[0])}`,
            );
          }
        }
      }),
    );
    expect(failures).toEqual([]);

    const firstOfType = new Map(
      entries.map((entry) => [entry.resource.resourceType, entry.resource]),
    );
    expect([...firstOfType.keys()]).toEqual(
      expect.arrayContaining([
        'Claim',
        'ExplanationOfBenefit',
        'CarePlan',
        'Procedure',
        'ImagingStudy',
        'Goal',
      ]),
    );
    for (const original of firstOfType.values()) {
      const read = await http('GET', `${testApp.url}/fhir/${original.resourceType}/${original.id}`);
      expect(read.status).toBe(200);
      expect(read.body).toEqual({
        ...original,
        meta: {
          ...(original['meta'] as object | undefined),
          versionId: expect.any(String),
          lastUpdated: expect.any(String),
        },
      });
    }

    const patients = entries.filter((entry) => entry.resource.resourceType === 'Patient');
    const families = patients.map(
      (entry) => (entry.resource['name'] as { family: string }[])[0]!.family,
    );
    const dataSource = testApp.app.get(DataSource);
    // Search for the JSON fragment: a bare short name such as "Hahn" turns up in base64
    // ciphertext by chance, a quoted key-value pair cannot.
    for (const family of families) {
      const [{ count }] = await dataSource.query(
        `SELECT (SELECT count(*) FROM resource WHERE content LIKE $1) + (SELECT count(*) FROM resource_history WHERE content LIKE $1) AS count`,
        [`%"family":"${family}"%`],
      );
      expect({ family, count: Number(count) }).toEqual({ family, count: 0 });
    }
  }, 300_000);
});
