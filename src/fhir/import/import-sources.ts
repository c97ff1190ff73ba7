import { createReadStream } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { extname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';

/** Resources per batch Bundle when an NDJSON file is sent: small enough to report lines. */
export const NDJSON_CHUNK = 200;

export interface ImportSource {
  path: string;
  kind: 'bundle' | 'ndjson';
  /** Resources it holds (bundle entries, or non-empty NDJSON lines). */
  resources: number;
  /**
   * Bundles that hold no Patient (Synthea's hospital and practitioner files) go first: the
   * patients' bundles refer to them by conditional reference (`Organization?identifier=...`).
   */
  shared: boolean;
}

/** One Bundle to send, and where its entries came from, for the report of what failed. */
export interface ImportUnit {
  source: ImportSource;
  bundle: Bundle;
  /** Entry index to its place in the source: `entry 3` or `line 1207`. */
  where: (index: number) => string;
}

interface Bundle {
  resourceType: 'Bundle';
  type: string;
  entry?: {
    fullUrl?: string;
    resource?: { resourceType?: string; id?: string };
    request?: unknown;
  }[];
}

/** Every .json and .ndjson file under the paths given (folders recursively), in name order. */
export async function findSources(paths: readonly string[]): Promise<string[]> {
  const files: string[] = [];
  for (const path of paths) {
    const absolute = resolve(path);
    if ((await stat(absolute)).isDirectory()) {
      const entries = await readdir(absolute, { recursive: true, withFileTypes: true });
      for (const entry of entries) {
        if (entry.isFile() && isImportable(entry.name)) {
          files.push(join(entry.parentPath, entry.name));
        }
      }
    } else {
      files.push(absolute);
    }
  }
  return [...new Set(files)].sort();
}

function isImportable(name: string): boolean {
  return ['.json', '.ndjson'].includes(extname(name).toLowerCase());
}

/**
 * Reads each file once to count its resources and check its shape, so that the progress bar
 * knows the total and a malformed file is reported before anything is written.
 */
export async function describeSource(path: string): Promise<ImportSource> {
  if (extname(path).toLowerCase() === '.ndjson') {
    let resources = 0;
    let number = 0;
    for await (const line of lines(path)) {
      number++;
      if (line.trim() === '') continue;
      parseLine(line, number, path);
      resources++;
    }
    return { path, kind: 'ndjson', resources, shared: false };
  }
  const bundle = await readBundle(path);
  const entries = bundle.entry ?? [];
  return {
    path,
    kind: 'bundle',
    resources: entries.length,
    shared: !entries.some((entry) => entry.resource?.resourceType === 'Patient'),
  };
}

/**
 * The Bundles a source is sent as: a Bundle file as it is (with `stableIds`, a POST whose fullUrl
 * is `urn:uuid:<uuid>` and that has no ifNoneExist becomes a PUT to that id, so that importing it
 * again updates rather than duplicates); an NDJSON file as batch Bundles of NDJSON_CHUNK
 * resources, each a PUT when the resource has an id and a POST when it has none.
 */
export async function* unitsOf(
  source: ImportSource,
  options: { stableIds: boolean },
): AsyncGenerator<ImportUnit> {
  if (source.kind === 'bundle') {
    const bundle = await readBundle(source.path);
    if (options.stableIds) usePutForUuids(bundle);
    yield { source, bundle, where: (index) => `entry ${index}` };
    return;
  }
  let chunk: { line: number; resource: unknown }[] = [];
  let number = 0;
  for await (const line of lines(source.path)) {
    number++;
    if (line.trim() === '') continue;
    chunk.push({ line: number, resource: parseLine(line, number, source.path) });
    if (chunk.length === NDJSON_CHUNK) {
      yield ndjsonUnit(source, chunk);
      chunk = [];
    }
  }
  if (chunk.length > 0) yield ndjsonUnit(source, chunk);
}

function ndjsonUnit(
  source: ImportSource,
  chunk: { line: number; resource: unknown }[],
): ImportUnit {
  const bundle: Bundle = {
    resourceType: 'Bundle',
    type: 'batch',
    entry: chunk.map(({ resource }) => {
      const { resourceType, id } = (resource ?? {}) as { resourceType?: unknown; id?: unknown };
      const type = typeof resourceType === 'string' ? resourceType : 'Unknown';
      return {
        resource: resource as Record<string, never>,
        request:
          typeof id === 'string'
            ? { method: 'PUT', url: `${type}/${id}` }
            : { method: 'POST', url: type },
      };
    }),
  };
  return { source, bundle, where: (index) => `line ${chunk[index]?.line ?? '?'}` };
}

/**
 * `--stable-ids`: an unconditional POST whose fullUrl is `urn:uuid:<uuid>` becomes a PUT to that
 * id. A conditional create (`ifNoneExist`) stays one: its criteria say what makes the resource
 * the same one (Synthea's Organizations and Practitioners by identifier), which two loads may
 * give different uuids; a PUT by uuid would store it twice, and a conditional reference to it
 * (`Organization?identifier=…`) would then match two (412).
 */
function usePutForUuids(bundle: Bundle): void {
  for (const entry of bundle.entry ?? []) {
    const request = entry.request as
      { method?: string; url?: string; ifNoneExist?: unknown } | undefined;
    const uuid = /^urn:uuid:([0-9a-f-]{36})$/i.exec(entry.fullUrl ?? '')?.[1];
    const type = entry.resource?.resourceType;
    if (request?.method !== 'POST' || !uuid || !type || request.url !== type) continue;
    if (request.ifNoneExist !== undefined) continue;
    entry.resource = { ...entry.resource, id: uuid };
    entry.request = { method: 'PUT', url: `${type}/${uuid}` };
  }
}

async function readBundle(path: string): Promise<Bundle> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(path, 'utf8'));
  } catch (error) {
    throw new ImportFileError(path, `is not JSON (${(error as Error).message})`);
  }
  const bundle = parsed as Partial<Bundle> | null;
  if (bundle?.resourceType !== 'Bundle' || !['transaction', 'batch'].includes(bundle.type ?? '')) {
    throw new ImportFileError(path, 'is not a transaction or batch Bundle');
  }
  return bundle as Bundle;
}

function parseLine(line: string, number: number, path: string): unknown {
  try {
    return JSON.parse(line);
  } catch {
    throw new ImportFileError(path, `line ${number} is not JSON`);
  }
}

function lines(path: string): AsyncIterable<string> {
  return createInterface({ input: createReadStream(path, 'utf8'), crlfDelay: Infinity });
}

/** A file that cannot be imported at all, named in the report. */
export class ImportFileError extends Error {
  constructor(
    readonly path: string,
    problem: string,
  ) {
    super(`${path} ${problem}`);
  }
}
