import { createReadStream } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { extname, join, resolve } from 'node:path';
import { createGunzip } from 'node:zlib';
import { AppError } from '../../common/errors/app-error.js';
import { bodyText } from '../../common/http/body-text.js';
import { parseJsonBody } from '../../common/http/json-body.js';
import type { LinePlace, ResourceIds } from './resource-ids.js';

/** Resources per batch Bundle when an NDJSON file is sent: small enough to report lines. */
export const NDJSON_CHUNK = 200;

/**
 * The largest Bundle file read: it is read and parsed whole (its JSON is several times its size
 * in memory), and past 512 MiB Node cannot hold its text at all. An export that size is NDJSON.
 */
export const MAX_BUNDLE_FILE_BYTES = 256 * 1024 * 1024;

/** A line that repeats the `Type/id` (key) of a line before it, the first place it was read. */
export interface Repeat {
  key: string;
  first: LinePlace;
}

/** How the files of an import are read. */
export interface Reading {
  /** The largest NDJSON line: BODY_LIMIT, the largest resource a PUT may send. */
  lineLimit: number;
}

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
  /** The resource types it holds. */
  types: ReadonlySet<string>;
  /** The types its literal references (`Patient/123`) name; NDJSON only (see loadingPhases). */
  refersTo: ReadonlySet<string>;
  /**
   * NDJSON lines whose `Type/id` a line before them holds (in this file or a file before it in
   * name order), by number, with where that first line is: not sent (see ResourceIds).
   */
  repeats: ReadonlyMap<number, Repeat>;
  /** The `Type/id` a Bundle's entries write by id, or by their uuid with --stable-ids. */
  stableKeys: ReadonlySet<string>;
}

/** One Bundle to send, and where its entries came from, for the report of what failed. */
export interface ImportUnit {
  source: ImportSource;
  bundle: Bundle;
  /** Entry index to its place in the source: `entry 3` or `line 1207`. */
  where: (index: number) => string;
  /** Entries of the source not sent, as a shared Bundle stored them (see leaveOutShared). */
  leftOut?: number;
}

interface Bundle {
  resourceType: 'Bundle';
  type: string;
  entry?: BundleEntry[];
}

interface BundleEntry {
  fullUrl?: string;
  resource?: { resourceType?: string; id?: string };
  request?: unknown;
}

/**
 * Every .json, .ndjson and .ndjson.gz file under the paths given (folders recursively), in name
 * order, and the other files of those folders (a `.zip`, say), which the import names rather
 * than leaving out unsaid.
 */
export async function findSources(
  paths: readonly string[],
): Promise<{ files: string[]; skipped: string[] }> {
  const files: string[] = [];
  const skipped: string[] = [];
  for (const path of paths) {
    const absolute = resolve(path);
    if ((await stat(absolute)).isDirectory()) {
      const entries = await readdir(absolute, { recursive: true, withFileTypes: true });
      for (const entry of entries) {
        if (!entry.isFile()) continue;
        const file = join(entry.parentPath, entry.name);
        (isImportable(entry.name) ? files : skipped).push(file);
      }
    } else {
      files.push(absolute);
    }
  }
  return { files: [...new Set(files)].sort(), skipped: [...new Set(skipped)].sort() };
}

function isImportable(name: string): boolean {
  return isNdjson(name) || extname(name).toLowerCase() === '.json';
}

/** NDJSON, as it is or gzip-compressed (as Bulk Data exports often are). */
function isNdjson(path: string): boolean {
  return /\.ndjson(\.gz)?$/i.test(path);
}

/**
 * Reads each file once to count its resources and check its shape, so that the progress bar
 * knows the total and a malformed file is reported before anything is written.
 */
export async function describeSource(
  path: string,
  reading: Reading & { ids: ResourceIds },
): Promise<ImportSource> {
  if (isNdjson(path)) {
    let resources = 0;
    let number = 0;
    const types = new Set<string>();
    const refersTo = new Set<string>();
    const repeats = new Map<number, Repeat>();
    for await (const line of lines(path, reading.lineLimit)) {
      number++;
      if (isBlank(line)) continue;
      const resource = parseLine(line, number, path, reading) as {
        resourceType?: unknown;
        id?: unknown;
      } | null;
      const type = resource?.resourceType;
      if (typeof type === 'string') types.add(type);
      if (typeof type === 'string' && typeof resource?.id === 'string') {
        const first = reading.ids.add(type, resource.id, { path, line: number });
        if (first) repeats.set(number, { key: `${type}/${resource.id}`, first });
      }
      referredTypes(resource, refersTo);
      resources++;
    }
    return {
      path,
      kind: 'ndjson',
      resources,
      shared: false,
      types,
      refersTo,
      repeats,
      stableKeys: new Set(),
    };
  }
  const bundle = await readBundle(path);
  const entries = bundle.entry ?? [];
  const types = new Set(entries.map((entry) => entry.resource?.resourceType ?? 'Unknown'));
  return {
    path,
    kind: 'bundle',
    resources: entries.length,
    shared: !types.has('Patient'),
    types,
    refersTo: new Set(),
    repeats: new Map(),
    stableKeys: new Set(entries.flatMap((entry) => stableKey(entry) ?? [])),
  };
}

/**
 * The order sources are loaded in: phases, each loaded `--concurrency` files at a time once the
 * one before it is in. Shared Bundles (no Patient) first. Then each NDJSON file after the files
 * that hold the types it refers to (Patient.ndjson, then Encounter.ndjson, then
 * Observation.ndjson), a type it holds itself aside. Loaded together or in name order, every
 * Observation of an export waited for its Patient, held in memory until the end of the pass and
 * sent twice: millions of lines, for a hospital's export. Files that refer to one another in a
 * circle share the last phase, where the lines that wait are sent again (see ImportCommand).
 */
export function loadingPhases(sources: readonly ImportSource[]): ImportSource[][] {
  const phases = [sources.filter((source) => source.shared)];
  let remaining = sources.filter((source) => !source.shared);
  while (remaining.length > 0) {
    const ready = remaining.filter((source) =>
      [...source.refersTo].every(
        (type) =>
          source.types.has(type) ||
          !remaining.some((other) => other !== source && other.types.has(type)),
      ),
    );
    const phase = ready.length > 0 ? ready : remaining;
    phases.push(phase);
    remaining = remaining.filter((source) => !phase.includes(source));
  }
  return phases.filter((phase) => phase.length > 0);
}

const LITERAL_REFERENCE = /^([A-Z][A-Za-z]+)\/[A-Za-z0-9\-.]{1,64}(\/_history\/[^/]+)?$/;

/** Adds to `types` the resource types that the literal references in `value` name. */
function referredTypes(value: unknown, types: Set<string>): void {
  if (Array.isArray(value)) {
    for (const item of value) referredTypes(item, types);
    return;
  }
  if (value === null || typeof value !== 'object') return;
  for (const [key, item] of Object.entries(value)) {
    if (key === 'reference' && typeof item === 'string') {
      const type = LITERAL_REFERENCE.exec(item)?.[1];
      if (type) types.add(type);
    } else {
      referredTypes(item, types);
    }
  }
}

/**
 * The Bundles a source is sent as: a Bundle file as it is (with `stableIds`, a POST whose fullUrl
 * is `urn:uuid:<uuid>` and that has no ifNoneExist becomes a PUT to that id, so that importing it
 * again updates rather than duplicates); an NDJSON file as batch Bundles of NDJSON_CHUNK
 * resources, each a PUT when the resource has an id and a POST when it has none.
 */
export async function* unitsOf(
  source: ImportSource,
  options: Reading & { stableIds: boolean; sharedKeys: ReadonlySet<string> },
): AsyncGenerator<ImportUnit> {
  if (source.kind === 'bundle') {
    const bundle = await readBundle(source.path);
    let places = bundle.entry?.map((_, index) => index) ?? [];
    if (options.stableIds && !source.shared && bundle.type === 'transaction') {
      places = leaveOutShared(bundle, options.sharedKeys);
    }
    if (options.stableIds) usePutForUuids(bundle);
    yield {
      source,
      bundle,
      where: (index) => `entry ${places[index] ?? '?'}`,
      leftOut: source.resources - places.length,
    };
    return;
  }
  let chunk: { line: number; resource: unknown }[] = [];
  let number = 0;
  for await (const line of lines(source.path, options.lineLimit)) {
    number++;
    if (isBlank(line) || source.repeats.has(number)) continue;
    chunk.push({ line: number, resource: parseLine(line, number, source.path, options) });
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
 * What an entry writes by id: a PUT's `Type/id`, or with --stable-ids an unconditional POST's
 * `Type/<uuid>` (see usePutForUuids).
 */
function stableKey(entry: BundleEntry): string | undefined {
  const request = entry.request as
    { method?: string; url?: string; ifNoneExist?: unknown } | undefined;
  if (request?.method === 'PUT' && typeof request.url === 'string') {
    return /^[A-Z][A-Za-z]+\/[A-Za-z0-9\-.]{1,64}$/.test(request.url) ? request.url : undefined;
  }
  const uuid = /^urn:uuid:([0-9a-f-]{36})$/i.exec(entry.fullUrl ?? '')?.[1];
  const type = entry.resource?.resourceType;
  if (request?.method !== 'POST' || !uuid || !type || request.url !== type) return undefined;
  return request.ifNoneExist === undefined ? `${type}/${uuid}` : undefined;
}

/**
 * `--stable-ids`, a patient's transaction: the entries that a shared Bundle (loaded before it)
 * writes by the same id are left out, and the references to them (`urn:uuid:<uuid>`) name the
 * stored resource (`Organization/<uuid>`). Synthea writes each hospital and practitioner into
 * its shared files and again, leaner, into every patient's Bundle under the same uuid: sent as
 * they are, each patient's copy replaced the shared one (the hospital's utilization extensions
 * lost, the last patient loaded winning) and every re-run added two versions of each. Returns
 * the place in the file of each entry kept.
 */
function leaveOutShared(bundle: Bundle, sharedKeys: ReadonlySet<string>): number[] {
  const places: number[] = [];
  const renamed = new Map<string, string>();
  const kept: BundleEntry[] = [];
  (bundle.entry ?? []).forEach((entry, index) => {
    const key = stableKey(entry);
    if (key !== undefined && sharedKeys.has(key) && entry.fullUrl?.startsWith('urn:uuid:')) {
      renamed.set(entry.fullUrl, key);
      return;
    }
    places.push(index);
    kept.push(entry);
  });
  if (renamed.size > 0) bundle.entry = kept.map((entry) => renameReferences(entry, renamed));
  return places;
}

/** A value with each `reference` that `renamed` holds replaced by what it maps it to. */
function renameReferences<T>(value: T, renamed: ReadonlyMap<string, string>): T {
  if (Array.isArray(value)) {
    return value.map((item: unknown) => renameReferences(item, renamed)) as T;
  }
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(
    Object.entries(value).map(([key, item]: [string, unknown]) => [
      key,
      key === 'reference' && typeof item === 'string' && renamed.has(item)
        ? renamed.get(item)
        : renameReferences(item, renamed),
    ]),
  ) as T;
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
  if ((await stat(path)).size > MAX_BUNDLE_FILE_BYTES) {
    throw new ImportFileError(
      path,
      `is larger than ${MAX_BUNDLE_FILE_BYTES / 1024 / 1024} MiB, the most a Bundle file ` +
        'is read whole at: split it, or export it as NDJSON',
    );
  }
  const bundle = parseJson(await readFile(path), path, '') as Partial<Bundle> | null;
  if (bundle?.resourceType !== 'Bundle' || !['transaction', 'batch'].includes(bundle.type ?? '')) {
    throw new ImportFileError(path, 'is not a transaction or batch Bundle');
  }
  return bundle as Bundle;
}

function parseLine(line: Line, number: number, path: string, reading: Reading): unknown {
  if (line === TOO_LONG) {
    throw new ImportFileError(
      path,
      `line ${number} is refused as an API request would be: it is larger than BODY_LIMIT ` +
        `(${reading.lineLimit} bytes)`,
    );
  }
  return parseJson(line, path, `line ${number} `);
}

/**
 * JSON read by the rules the API reads a FHIR body by (bodyText, parseJsonBody): UTF-8 only,
 * no half surrogate pairs, no decimal a double cannot hold as written, no prototype-named keys.
 * Read with readFile's lenient decoding and JSON.parse, a Latin-1 name was imported with U+FFFD
 * in it and 9007199254740993 as ...992, both of which the API refuses. The reason names the
 * element, never a value, and JSON.parse's message (which quotes the text) is not passed on.
 */
function parseJson(bytes: Buffer, path: string, where: string): unknown {
  // A UTF-16 byte order mark (what Windows tools call "Unicode"), LE or BE: named as such rather
  // than as bytes that are not UTF-8, which sent the engineer looking for a bad character.
  if ((bytes[0] === 0xff && bytes[1] === 0xfe) || (bytes[0] === 0xfe && bytes[1] === 0xff)) {
    throw new ImportFileError(
      path,
      'is UTF-16 (it starts with its byte order mark): FHIR JSON is UTF-8, convert it to UTF-8 ' +
        'first (iconv -f UTF-16 -t UTF-8)',
    );
  }
  try {
    return parseJsonBody(bodyText(bytes, undefined), { exactNumbers: true });
  } catch (error) {
    if (!(error instanceof AppError)) throw error;
    throw new ImportFileError(
      path,
      `${where}is refused as an API request would be: ${error.message}`,
    );
  }
}

/** A line longer than the limit, whose bytes were not kept. */
const TOO_LONG = Symbol('too long');

type Line = Buffer | typeof TOO_LONG;

/**
 * A file's lines as bytes, split at LF (a byte no other UTF-8 character contains) and without
 * a CR before it, so that each is decoded on its own and a bad byte is reported by line. A line
 * longer than `limit` bytes is TOO_LONG, its bytes dropped as they are read: gathered whole, a
 * file of hundreds of megabytes without a newline filled the memory, and past 512 MiB (more
 * than a string holds) was reported as text that is not UTF-8.
 */
export async function* lines(path: string, limit: number): AsyncGenerator<Line> {
  let pending: Buffer[] = [];
  let length = 0;
  let tooLong = false;
  for await (const chunk of bytesOf(path)) {
    let start = 0;
    for (let end = chunk.indexOf(0x0a); end !== -1; end = chunk.indexOf(0x0a, start)) {
      yield tooLong ? TOO_LONG : within(limit, [...pending, chunk.subarray(start, end)]);
      pending = [];
      length = 0;
      tooLong = false;
      start = end + 1;
    }
    if (start < chunk.length && !tooLong) {
      pending.push(chunk.subarray(start));
      length += chunk.length - start;
      // One byte more for the CR that may end it.
      if (length > limit + 1) {
        pending = [];
        tooLong = true;
      }
    }
  }
  if (tooLong) yield TOO_LONG;
  else if (pending.length > 0) yield within(limit, pending);
}

/**
 * A file's bytes, unpacked as they are read when it is gzip-compressed (`.gz`). A file that is
 * not gzip, or is cut short, is named as such rather than failing with zlib's error.
 */
async function* bytesOf(path: string): AsyncGenerator<Buffer> {
  const file = createReadStream(path);
  if (!/\.gz$/i.test(path)) {
    yield* file as AsyncIterable<Buffer>;
    return;
  }
  const unpacked = file.pipe(createGunzip());
  file.once('error', (error) => unpacked.destroy(error));
  try {
    yield* unpacked as AsyncIterable<Buffer>;
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if (typeof code !== 'string' || !code.startsWith('Z_')) throw error;
    throw new ImportFileError(path, `is not a whole gzip file (${code})`);
  } finally {
    file.destroy();
  }
}

/** A line's parts as one line without its CR, unless it is longer than `limit`. */
function within(limit: number, parts: Buffer[]): Line {
  const line = withoutCr(Buffer.concat(parts));
  return line.length > limit ? TOO_LONG : line;
}

function isBlank(line: Line): boolean {
  return line !== TOO_LONG && line.every((byte) => byte === 0x20 || byte === 0x09 || byte === 0x0d);
}

function withoutCr(line: Buffer): Buffer {
  return line.at(-1) === 0x0d ? line.subarray(0, -1) : line;
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
