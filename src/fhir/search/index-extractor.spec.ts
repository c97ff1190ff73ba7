import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { BlindIndexer } from '../../crypto/blind-index.js';
import { KeyRing, keyIdOf } from '../../crypto/key-ring.js';
import { FhirDefinitions } from '../fhir-definitions.js';
import type { FhirResource } from '../fhir-types.js';
import { IndexExtractor } from './index-extractor.js';
import { SearchDefinitions } from './search-definitions.js';

/** ../shared/fhir-samples/synthea beside the repository, as CI lays it out. */
const SAMPLES = fileURLToPath(new URL('../../../../shared/fhir-samples/synthea/', import.meta.url));

async function sampleResources(): Promise<FhirResource[]> {
  const resources: FhirResource[] = [];
  for (const file of (await readdir(SAMPLES)).filter((name) => name.endsWith('.json'))) {
    const bundle = JSON.parse(await readFile(`${SAMPLES}${file}`, 'utf8')) as {
      entry: { resource: FhirResource }[];
    };
    resources.push(...bundle.entry.map((entry) => entry.resource));
  }
  return resources;
}

/** Index rows in a comparable form: order does not matter, only which rows there are. */
function rowSet(rows: object): string[] {
  return Object.entries(rows)
    .flatMap(([table, list]) => (list as object[]).map((row) => `${table} ${JSON.stringify(row)}`))
    .sort();
}

const describeWithSamples = existsSync(SAMPLES) ? describe : describe.skip;

describeWithSamples('IndexExtractor on plain element paths', () => {
  it('writes exactly the rows the FHIRPath engine gives, for every Synthea resource', async () => {
    new FhirDefinitions(); // loads the StructureDefinitions the engine needs, as the app does
    const material = randomBytes(32);
    const ring = new KeyRing(
      [{ id: keyIdOf(material), material }],
      keyIdOf(material),
      keyIdOf(material),
    );
    const fast = new IndexExtractor(new SearchDefinitions(), new BlindIndexer(ring));
    const engineDefinitions = new SearchDefinitions();
    const engine = new IndexExtractor(engineDefinitions, new BlindIndexer(ring));
    const resources = await sampleResources();
    expect(resources.length).toBeGreaterThan(4000);
    // Resource-level parameters (_tag, _profile, _security, _source) keep their paths on both
    // sides: the engine finds nothing for `Resource.meta.tag` on a Patient (see below).
    const resourceLevel = new Set(engineDefinitions.paramsOf('Resource').map((p) => p.code));
    let walked = 0;
    for (const resource of resources) {
      for (const param of engineDefinitions.paramsOf(resource.resourceType)) {
        if (!param.paths || resourceLevel.has(param.code)) continue;
        walked++;
        delete (param as { paths?: unknown }).paths;
      }
      expect({
        resource: `${resource.resourceType}/${resource.id}`,
        rows: rowSet(fast.extract(resource)),
      }).toEqual({
        resource: `${resource.resourceType}/${resource.id}`,
        rows: rowSet(engine.extract(resource)),
      });
    }
    // Most parameters are plain paths: the comparison covered the fast path, not only the engine.
    expect(walked).toBeGreaterThan(50);
  });

  it('indexes the Resource-level parameters, which the engine misses on a concrete type', () => {
    const material = randomBytes(32);
    const id = keyIdOf(material);
    const definitions = new SearchDefinitions();
    const extractor = new IndexExtractor(
      definitions,
      new BlindIndexer(new KeyRing([{ id, material }], id, id)),
    );
    const rows = extractor.extract({
      resourceType: 'Patient',
      id: 'p1',
      meta: { tag: [{ system: 'urn:tags', code: 'vip' }], profile: ['urn:profile'] },
      gender: 'female',
    });
    expect(rows.tokens).toEqual(
      expect.arrayContaining([{ param: '_tag', system: 'urn:tags', code: 'vip' }]),
    );
    expect(rows.uris).toEqual(
      expect.arrayContaining([{ param: '_profile', value: 'urn:profile' }]),
    );
  });
});
