import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { FhirResource } from '../../src/fhir/fhir-types.js';

/** ../shared/fhir-samples/synthea beside the repository, as CI lays it out. */
export const SYNTHEA_SAMPLES = fileURLToPath(
  new URL('../../../shared/fhir-samples/synthea/', import.meta.url),
);

/** Whether the samples are there: a checkout without shared/ skips what needs them. */
export const hasSyntheaSamples = existsSync(SYNTHEA_SAMPLES);

/**
 * Every resource of every Synthea bundle. With `resolved`, their `urn:uuid:` references to
 * entries of the same bundle become `Type/id`, as a transaction stores them.
 */
export async function syntheaResources(options = { resolved: false }): Promise<FhirResource[]> {
  const resources: FhirResource[] = [];
  for (const file of (await readdir(SYNTHEA_SAMPLES)).filter((name) => name.endsWith('.json'))) {
    const bundle = JSON.parse(await readFile(`${SYNTHEA_SAMPLES}${file}`, 'utf8')) as {
      entry: { fullUrl: string; resource: FhirResource }[];
    };
    const entries = bundle.entry.map((entry) => entry.resource);
    if (!options.resolved) {
      resources.push(...entries);
      continue;
    }
    const local = new Map(
      bundle.entry.map(({ fullUrl, resource }) => [
        fullUrl,
        `${resource.resourceType}/${String(resource.id)}`,
      ]),
    );
    const resolved = JSON.stringify(entries).replace(
      /"reference":"(urn:uuid:[^"]+)"/g,
      (whole, url: string) => (local.has(url) ? `"reference":"${local.get(url)}"` : whole),
    );
    resources.push(...(JSON.parse(resolved) as FhirResource[]));
  }
  return resources;
}
