import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { lines, loadingPhases, type ImportSource } from './import-sources.js';

const ndjson = (path: string, types: string[], refersTo: string[]): ImportSource => ({
  path,
  kind: 'ndjson',
  resources: 1,
  shared: false,
  types: new Set(types),
  refersTo: new Set(refersTo),
  repeats: new Map(),
  stableKeys: new Set(),
});

const paths = (phases: ImportSource[][]) => phases.map((phase) => phase.map((s) => s.path));

describe('loadingPhases', () => {
  it('loads a file after the files holding the types it refers to', () => {
    const phases = loadingPhases([
      ndjson('Encounter.ndjson', ['Encounter'], ['Patient', 'Practitioner']),
      ndjson('Observation.ndjson', ['Observation'], ['Patient', 'Encounter']),
      ndjson('Patient.ndjson', ['Patient'], ['Organization']),
    ]);
    expect(paths(phases)).toEqual([
      ['Patient.ndjson'],
      ['Encounter.ndjson'],
      ['Observation.ndjson'],
    ]);
  });

  it('puts shared Bundles first, and files of one type together despite their own references', () => {
    const shared: ImportSource = { ...ndjson('hospital.json', ['Organization'], []) };
    const phases = loadingPhases([
      ndjson('Patient.000.ndjson', ['Patient'], ['Patient']),
      ndjson('Patient.001.ndjson', ['Patient'], ['Patient']),
      { ...shared, kind: 'bundle', shared: true },
    ]);
    expect(paths(phases)).toEqual([
      ['hospital.json'],
      ['Patient.000.ndjson', 'Patient.001.ndjson'],
    ]);
  });

  it('loads files that refer to one another in a circle together, after what they wait for', () => {
    const phases = loadingPhases([
      ndjson('Condition.ndjson', ['Condition'], ['Encounter', 'Patient']),
      ndjson('Encounter.ndjson', ['Encounter'], ['Condition', 'Patient']),
      ndjson('Patient.ndjson', ['Patient'], []),
    ]);
    expect(paths(phases)).toEqual([['Patient.ndjson'], ['Condition.ndjson', 'Encounter.ndjson']]);
  });
});

describe('lines', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'carevault-lines-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  const read = async (bytes: Buffer, limit: number) => {
    const file = join(dir, `${Math.random()}.ndjson`);
    await writeFile(file, bytes);
    const found: (string | symbol)[] = [];
    for await (const line of lines(file, limit)) {
      found.push(typeof line === 'symbol' ? line : line.toString());
    }
    return found;
  };

  it('splits at LF, drops a CR before it, and keeps a last line without one', async () => {
    expect(await read(Buffer.from('a\r\nbb\n\nccc'), 1024)).toEqual(['a', 'bb', '', 'ccc']);
  });

  it('marks a line longer than the limit without keeping it, across read chunks too', async () => {
    // Three lines: one of 200 KiB (read in several chunks), one at the limit with a CR, and a
    // last one too long without a newline.
    const long = 'x'.repeat(200 * 1024);
    const found = await read(Buffer.from(`${long}\n${'y'.repeat(8)}\r\nok\n${long}`), 8);
    expect(found).toHaveLength(4);
    expect(typeof found[0]).toBe('symbol');
    expect(found.slice(1, 3)).toEqual(['y'.repeat(8), 'ok']);
    expect(found[3]).toBe(found[0]);
    expect(await read(Buffer.from('123456789\n'), 8)).toEqual([found[0]]);
  });
});
