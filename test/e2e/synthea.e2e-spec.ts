import { readdir, readFile } from 'node:fs/promises';
import { isDeepStrictEqual } from 'node:util';
import { DataSource } from 'typeorm';
import { tokenFor } from '../support/auth.js';
import { withEnv } from '../support/env.js';
import { authorizedHttp, type HttpFn } from '../support/http.js';
import { hasSyntheaSamples, SYNTHEA_SAMPLES } from '../support/synthea-samples.js';
import { createTestApp, type TestApp } from '../support/test-app.js';

let http: HttpFn;

interface Resource {
  resourceType: string;
  id: string;
  [key: string]: unknown;
}

interface Entry {
  fullUrl: string;
  resource: Resource;
}

/** Each sample bundle: a transaction of creates whose entries refer to each other by fullUrl. */
async function loadBundles(): Promise<{ file: string; bundle: { entry: Entry[] } }[]> {
  const files = (await readdir(SYNTHEA_SAMPLES)).filter((file) => file.endsWith('.json')).sort();
  const bundles = [];
  for (const file of files) {
    const text = await readFile(`${SYNTHEA_SAMPLES}${file}`, 'utf8');
    bundles.push({ file, bundle: JSON.parse(text) as { entry: Entry[] } });
  }
  return bundles;
}

/**
 * The bundle's resources as its transaction stores them: under the ids the server gave them,
 * their `urn:uuid:` references to other entries become those `Type/id`s.
 */
function asStored(entries: Entry[], ids: string[]): Resource[] {
  const local = new Map(
    entries.map(({ fullUrl, resource }, i) => [fullUrl, `${resource.resourceType}/${ids[i]}`]),
  );
  const resolved = JSON.stringify(entries.map(({ resource }, i) => ({ ...resource, id: ids[i] })));
  return JSON.parse(
    resolved.replace(/"reference":"(urn:uuid:[^"]+)"/g, (whole, url: string) =>
      local.has(url) ? `"reference":"${local.get(url)}"` : whole,
    ),
  ) as Resource[];
}

/** A resource without the meta.versionId and meta.lastUpdated the server gives it. */
function withoutServerMeta(resource: Resource): Resource {
  const meta = { ...(resource['meta'] as Record<string, unknown> | undefined) };
  delete meta['versionId'];
  delete meta['lastUpdated'];
  const rest: Resource = { ...resource };
  delete rest['meta'];
  return Object.keys(meta).length > 0 ? { ...rest, meta } : rest;
}

const describeWithSamples = hasSyntheaSamples ? describe : describe.skip;

describeWithSamples('real data: the Synthea sample bundles', () => {
  let testApp: TestApp;
  let restoreEnv: () => void;

  beforeAll(async () => {
    // The largest Synthea bundle is 3 MB.
    restoreEnv = withEnv({ BODY_LIMIT: String(8 * 1024 * 1024) });
    testApp = await createTestApp();
    http = authorizedHttp(await tokenFor(testApp, 'integration'));
  });

  afterAll(async () => {
    await testApp.close();
    restoreEnv();
  });

  it('validates, stores and returns every resource of every type unchanged, encrypted at rest', async () => {
    // Each bundle loads as the transaction it is (FHIR validation of every resource, all
    // written in one commit): with a PUT request for each resource this test took 150 s.
    const bundles = await loadBundles();
    expect(bundles.flatMap(({ bundle }) => bundle.entry).length).toBeGreaterThan(4000);
    const failures: string[] = [];
    const stored: Resource[] = [];
    for (const { file, bundle } of bundles) {
      const res = await http('POST', `${testApp.url}/fhir`, {
        body: bundle,
        headers: { prefer: 'return=representation' },
      });
      expect({ file, status: res.status, issue: res.body?.issue?.[0] }).toEqual({
        file,
        status: 200,
        issue: undefined,
      });
      const answers = res.body.entry as { resource: Resource; response: { status: string } }[];
      expect(answers).toHaveLength(bundle.entry.length);
      const expected = asStored(
        bundle.entry,
        answers.map((answer) => answer.resource.id),
      );
      for (const [i, original] of expected.entries()) {
        const { resource, response } = answers[i]!;
        const name = `${file} entry ${i} (${original.resourceType})`;
        if (response.status !== '201 Created') failures.push(`${name}: ${response.status}`);
        if (!isDeepStrictEqual(withoutServerMeta(resource), original)) {
          failures.push(`${name}: answered changed`);
        }
      }
      stored.push(...expected);
    }
    expect(failures).toEqual([]);

    // Read back from the database: the last version of one resource of each type.
    const lastOfType = new Map(stored.map((resource) => [resource.resourceType, resource]));
    expect([...lastOfType.keys()]).toEqual(
      expect.arrayContaining([
        'Claim',
        'ExplanationOfBenefit',
        'CarePlan',
        'Procedure',
        'ImagingStudy',
        'Goal',
      ]),
    );
    for (const original of lastOfType.values()) {
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

    const families = stored
      .filter((resource) => resource.resourceType === 'Patient')
      .map((patient) => (patient['name'] as { family: string }[])[0]!.family);
    expect(families.length).toBeGreaterThan(10);
    const dataSource = testApp.app.get(DataSource);
    // Search for the JSON fragment: a bare short name such as "Hahn" turns up in base64
    // ciphertext by chance, a quoted key-value pair cannot. One pass over each table names
    // the families found in plaintext.
    const found = await dataSource.query<{ pattern: string }[]>(
      `SELECT DISTINCT pattern FROM (SELECT content FROM resource UNION ALL SELECT content FROM resource_history) stored
        CROSS JOIN unnest($1::text[]) AS pattern WHERE stored.content LIKE pattern`,
      [families.map((family) => `%"family":"${family}"%`)],
    );
    expect(found.map((row) => row.pattern)).toEqual([]);
  }, 300_000);
});
