import { randomUUID } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { startCliHost, type CliHost } from '../support/cli.js';
import { BUILT, runNode, serviceEnv, type Finished } from '../support/process.js';
import { createScratchDatabase, type ScratchDatabase } from '../support/scratch-database.js';

const SYNTHEA = fileURLToPath(new URL('../../../shared/fhir-samples/synthea/', import.meta.url));

/** Resources as a bulk export writes them: one JSON object per line. */
const ndjson = (...resources: object[]) => resources.map((r) => JSON.stringify(r)).join('\n');

const observation = (id: string, subject: string) => ({
  resourceType: 'Observation',
  id,
  status: 'final',
  code: { text: 'Heart rate' },
  subject: { reference: subject },
});

describe('cli import: Bundles and NDJSON from files', () => {
  let database: ScratchDatabase;
  let dataDir: string;
  let inputs: string;
  let env: Record<string, string>;
  let db: pg.Client;

  const count = async (type: string): Promise<number> => {
    const { rows } = await db.query<{ n: string }>(
      'SELECT count(*) AS n FROM resource WHERE resource_type = $1 AND NOT deleted',
      [type],
    );
    return Number(rows[0]!.n);
  };
  /** The built CLI in a process of its own: the first Synthea load and an NDJSON load with
   * rejections run it, for its exit codes and streams. */
  const binaryImport = (...args: string[]): Promise<Finished> =>
    runNode(BUILT.cli, ['import', ...args], env, { timeoutMs: 120_000 });
  /** The others go through one built CLI process (see startCliHost): a start of the binary
   * costs seconds of CPU. */
  let host: CliHost;
  const runImport = (...args: string[]): Promise<Finished> => host.run(['import', ...args], env);

  beforeAll(async () => {
    host = await startCliHost();
    database = await createScratchDatabase();
    dataDir = await mkdtemp(join(tmpdir(), 'carevault-import-'));
    inputs = join(dataDir, 'inputs');
    env = serviceEnv(database.url, dataDir);
    db = new pg.Client({ connectionString: database.url });
    await db.connect();
    // The shared hospital and practitioner bundles and two patients, in a folder of their own.
    const synthea = join(inputs, 'synthea');
    await mkdir(synthea, { recursive: true });
    const files = (await readdir(SYNTHEA)).filter((file) => file.endsWith('.json')).sort();
    const shared = files.filter((file) => /^(hospital|practitioner)Information/.test(file));
    const patients = files.filter((file) => !shared.includes(file)).slice(0, 2);
    for (const file of [...shared, ...patients]) {
      await copyFile(join(SYNTHEA, file), join(synthea, file));
    }
  });

  afterAll(async () => {
    await host?.close();
    await db.end();
    await database.drop();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('loads a Synthea folder with progress and a summary, and a re-run with --stable-ids adds nothing', async () => {
    const first = await binaryImport('--stable-ids', join(inputs, 'synthea'));
    expect(first.stderr).toContain('Importing [');
    expect(first.stderr).toMatch(/resources \| \d+\/s \| ETA/);
    expect(first).toMatchObject({ code: 0 });
    const summary =
      /Imported (\d+) of (\d+) resources from 4 files in [\d.]+ s \(\d+ resources\/s\); 0 rejected/.exec(
        first.stdout,
      );
    expect(summary).not.toBeNull();
    expect(summary![1]).toBe(summary![2]);
    expect(await count('Patient')).toBe(2);
    const observations = await count('Observation');
    const organizations = await count('Organization');
    expect(observations).toBeGreaterThan(10);

    const again = await runImport('--stable-ids', '--concurrency', '2', join(inputs, 'synthea'));
    expect(again).toMatchObject({ code: 0 });
    expect(await count('Patient')).toBe(2);
    expect(await count('Observation')).toBe(observations);
    expect(await count('Organization')).toBe(organizations);

    // Every Bundle has its audit row naming the patients it wrote, and the chain holds.
    const { rows } = await db.query<{ patients: number }>(
      `SELECT cardinality(patient_ids) AS patients FROM audit_event
        WHERE source = 'cli' AND subtype = 'import-transaction' AND outcome = 'success'`,
    );
    expect(rows).toHaveLength(8);
    expect(rows.filter((row) => row.patients === 1)).toHaveLength(4);
    expect(await host.run(['audit:verify'], env)).toMatchObject({ code: 0 });
  });

  it('keeps conditional creates conditional with --stable-ids: one Organization for two loads', async () => {
    // Two loads name the same Organization (the same identifier) under different uuids, as two
    // Synthea runs do; a third refers to it by conditional reference.
    const folder = join(inputs, 'conditional');
    await mkdir(folder);
    const identifier = { system: 'https://example.org/orgs', value: randomUUID() };
    const criteria = `identifier=${identifier.system}|${identifier.value}`;
    const load = (patient: string, managingOrganization: Record<string, unknown>) => ({
      fullUrl: `urn:uuid:${patient}`,
      resource: {
        resourceType: 'Patient',
        name: [{ family: 'Conditional' }],
        managingOrganization,
      },
      request: { method: 'POST', url: 'Patient' },
    });
    const bundle = (...entry: object[]) =>
      JSON.stringify({ resourceType: 'Bundle', type: 'transaction', entry });
    const patients = [randomUUID(), randomUUID(), randomUUID()];
    for (const [i, name] of ['a', 'b'].entries()) {
      const organization = randomUUID();
      await writeFile(
        join(folder, `${name}.json`),
        bundle(
          {
            fullUrl: `urn:uuid:${organization}`,
            resource: { resourceType: 'Organization', name: 'General', identifier: [identifier] },
            request: { method: 'POST', url: 'Organization', ifNoneExist: criteria },
          },
          load(patients[i]!, { reference: `urn:uuid:${organization}` }),
        ),
      );
    }
    await writeFile(
      join(folder, 'c.json'),
      bundle(load(patients[2]!, { reference: `Organization?${criteria}` })),
    );
    const organizations = await count('Organization');
    for (const run of [1, 2]) {
      const result = await runImport('--stable-ids', '--concurrency', '1', folder);
      expect({
        run,
        stderr: result.stderr.split('\n').filter((line) => / \d{3} /.test(line)),
      }).toEqual({ run, stderr: [] });
      expect(result).toMatchObject({ code: 0 });
      expect(await count('Organization')).toBe(organizations + 1);
    }
    const { rows } = await db.query<{ id: string }>(
      'SELECT id FROM resource WHERE resource_type = $1 AND id = ANY($2) AND NOT deleted',
      ['Patient', patients],
    );
    expect(rows).toHaveLength(3);
  });

  it('loads NDJSON with stable ids, lists each rejected line, and exits non-zero', async () => {
    const file = join(inputs, 'patients.ndjson');
    const lines = [
      { resourceType: 'Patient', id: 'nd-1', name: [{ family: 'Ndjson' }] },
      { resourceType: 'Patient', name: [{ family: 'NoId' }] },
      '',
      { resourceType: 'Observation', id: 'nd-obs', code: { text: 'no status' } },
      { resourceType: 'Patient', id: 'nd-2', birthDate: 'yesterday' },
    ];
    await writeFile(
      file,
      lines.map((line) => (typeof line === 'string' ? line : JSON.stringify(line))).join('\n'),
    );
    const before = await count('Patient');
    const result = await binaryImport(file);
    expect(result.code).toBe(1);
    expect(result.stdout).toContain('Imported 2 of 4 resources from 1 files');
    expect(result.stdout).toContain('2 rejected');
    expect(result.stderr).toMatch(/patients\.ndjson line 4: 400 .*status/);
    expect(result.stderr).toMatch(/patients\.ndjson line 5: 400 /);
    expect(await count('Patient')).toBe(before + 2);

    // The line with an id is updated in place on a re-run; the one without is created again.
    await runImport(file);
    expect(await count('Patient')).toBe(before + 3);
  });

  it('loads an NDJSON export type by type, whatever the order of its files', async () => {
    // As a bulk export writes it: one file per type, and Observation.ndjson sorts first.
    const folder = join(inputs, 'export');
    await mkdir(folder);
    await writeFile(
      join(folder, 'Encounter.ndjson'),
      ndjson({
        resourceType: 'Encounter',
        id: 'ex-enc',
        status: 'finished',
        class: { code: 'AMB' },
        subject: { reference: 'Patient/ex-p' },
      }),
    );
    await writeFile(
      join(folder, 'Observation.ndjson'),
      ndjson(
        { ...observation('ex-obs', 'Patient/ex-p'), encounter: { reference: 'Encounter/ex-enc' } },
        observation('ex-orphan', 'Patient/ex-nobody'),
      ),
    );
    await writeFile(
      join(folder, 'Patient.ndjson'),
      ndjson({ resourceType: 'Patient', id: 'ex-p', name: [{ family: 'Exported' }] }),
    );
    const result = await runImport('--concurrency', '1', folder);
    expect(result.stdout).toContain('Imported 3 of 4 resources from 3 files');
    expect(result.stderr).toMatch(
      /Observation\.ndjson line 2: 400 .*Patient\/ex-nobody, referred to by Observation \(patient, subject\)/,
    );
    expect(result.code).toBe(1);
    const { rows } = await db.query<{ id: string }>(
      "SELECT id FROM resource WHERE id LIKE 'ex-%' AND NOT deleted ORDER BY id",
    );
    expect(rows.map((row) => row.id)).toEqual(['ex-enc', 'ex-obs', 'ex-p']);
  });

  it('loads the NDJSON files a file refers to before it, so that no line waits in memory', async () => {
    // An overnight export of millions of Observations: loaded at once with Patient.ndjson (or
    // before it, as it sorts first), every line waited in memory for its patient, sent again.
    const folder = join(inputs, 'ordered');
    await mkdir(folder);
    const patients = Array.from({ length: 30 }, (_, i) => ({
      resourceType: 'Patient',
      id: `or-p${i}`,
      name: [{ family: 'Ordered' }],
    }));
    await writeFile(join(folder, 'Patient.ndjson'), ndjson(...patients));
    await writeFile(
      join(folder, 'Encounter.ndjson'),
      ndjson(
        ...patients.map((patient, i) => ({
          resourceType: 'Encounter',
          id: `or-e${i}`,
          status: 'finished',
          class: { code: 'AMB' },
          subject: { reference: `Patient/${patient.id}` },
        })),
      ),
    );
    await writeFile(
      join(folder, 'Observation.ndjson'),
      ndjson(
        ...patients.map((patient, i) => ({
          ...observation(`or-o${i}`, `Patient/${patient.id}`),
          encounter: { reference: `Encounter/or-e${i}` },
        })),
      ),
    );
    const { rows: start } = await db.query<{ now: Date }>('SELECT clock_timestamp() AS now');
    const result = await runImport(folder);
    expect(result.stdout).toContain('Imported 90 of 90 resources from 3 files');
    expect(result.code).toBe(0);
    const { rows } = await db.query<{ detail: string }>(
      `SELECT detail FROM audit_event
        WHERE subtype = 'import-batch' AND recorded_at >= $1 ORDER BY chain_seq`,
      [start[0]!.now],
    );
    expect(rows.map((row) => row.detail)).toEqual([
      'entries=30 rejected=0 deferred=0',
      'entries=30 rejected=0 deferred=0',
      'entries=30 rejected=0 deferred=0',
    ]);
  });

  it('stores NDJSON resources that refer to each other together, and still rejects the orphan', async () => {
    // A merged Patient pair: each names the other (link replaced-by / replaces), so neither can
    // be stored first; an Observation waits for one of them, another for a patient not there.
    const folder = join(inputs, 'merged');
    await mkdir(folder);
    await writeFile(
      join(folder, 'Observation.ndjson'),
      ndjson(observation('mg-obs', 'Patient/mg-old'), observation('mg-orphan', 'Patient/mg-none')),
    );
    await writeFile(
      join(folder, 'Patient.ndjson'),
      ndjson(
        {
          resourceType: 'Patient',
          id: 'mg-old',
          active: false,
          link: [{ other: { reference: 'Patient/mg-new' }, type: 'replaced-by' }],
        },
        {
          resourceType: 'Patient',
          id: 'mg-new',
          link: [{ other: { reference: 'Patient/mg-old' }, type: 'replaces' }],
        },
      ),
    );
    const result = await runImport('--concurrency', '1', folder);
    expect(result.stdout).toContain('Imported 3 of 4 resources from 2 files');
    expect(result.stdout).toContain('1 rejected');
    expect(result.stderr).toMatch(/Observation\.ndjson line 2: 400 .*Patient\/mg-none/);
    expect(result.stderr).not.toMatch(/Patient\.ndjson|Observation\.ndjson line 1/);
    expect(result.code).toBe(1);
    const { rows } = await db.query<{ id: string }>(
      "SELECT id FROM resource WHERE id LIKE 'mg-%' AND NOT deleted ORDER BY id",
    );
    expect(rows.map((row) => row.id)).toEqual(['mg-new', 'mg-obs', 'mg-old']);
  });

  it('retries a refused group line by line: only the bad lines are rejected, each for its own reason, and none is stored twice', async () => {
    // A merged Patient pair, an Observation without an id (a POST) and one with an id waiting
    // for it, and an Observation that also names a Practitioner the import does not hold: one
    // group, whose transaction that last line refuses. A second pair waits for each other, one
    // of them for an Organization not there: neither can be stored.
    const folder = join(inputs, 'partly');
    await mkdir(folder);
    const code = `Partly-${randomUUID().slice(0, 8)}`;
    await writeFile(
      join(folder, 'Observation.ndjson'),
      ndjson(
        { ...observation('pt-obs', 'Patient/pt-old'), code: { text: code } },
        {
          resourceType: 'Observation',
          status: 'final',
          code: { text: code },
          subject: { reference: 'Patient/pt-new' },
        },
        {
          ...observation('pt-bad', 'Patient/pt-old'),
          performer: [{ reference: 'Practitioner/pt-nobody' }],
        },
      ),
    );
    const link = (other: string, type: string) => [{ other: { reference: other }, type }];
    await writeFile(
      join(folder, 'Patient.ndjson'),
      ndjson(
        { resourceType: 'Patient', id: 'pt-old', link: link('Patient/pt-new', 'replaced-by') },
        { resourceType: 'Patient', id: 'pt-new', link: link('Patient/pt-old', 'replaces') },
        { resourceType: 'Patient', id: 'pt-a', link: link('Patient/pt-b', 'seealso') },
        {
          resourceType: 'Patient',
          id: 'pt-b',
          link: link('Patient/pt-a', 'seealso'),
          managingOrganization: { reference: 'Organization/pt-none' },
        },
      ),
    );
    const result = await runImport('--concurrency', '1', folder);
    expect(result.stdout).toContain('Imported 4 of 7 resources from 2 files');
    expect(result.stdout).toContain('3 rejected');
    const rejected = result.stderr.split('\n').filter((line) => / \d{3} /.test(line));
    expect(rejected).toHaveLength(3);
    expect(rejected).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/Observation\.ndjson line 3: 400 .*Practitioner\/pt-nobody/),
        expect.stringMatching(/Patient\.ndjson line 4: 400 .*Organization\/pt-none/),
        // Refused for what it refers to, which was refused: not for the Organization.
        expect.stringMatching(/Patient\.ndjson line 3: 400 .*Patient\/pt-b/),
      ]),
    );
    expect(
      rejected.find((line) => line.includes('line 3: 400') && line.includes('Patient.')),
    ).not.toMatch(/pt-none/);
    expect(result.code).toBe(1);
    const { rows } = await db.query<{ id: string }>(
      "SELECT id FROM resource WHERE id LIKE 'pt-%' AND NOT deleted ORDER BY id",
    );
    expect(rows.map((row) => row.id)).toEqual(['pt-new', 'pt-obs', 'pt-old']);
    // The Observation without an id was created once, whatever was tried before.
    const { rows: created } = await db.query<{ versions: number }>(
      `SELECT count(*)::int AS versions FROM resource_history h
        WHERE h.resource_type = 'Observation' AND h.id NOT LIKE 'pt-%'
          AND h.id IN (SELECT resource_id FROM search_reference
                        WHERE resource_type = 'Observation' AND target_id = 'pt-new')`,
    );
    expect(created).toEqual([{ versions: 1 }]);
  });

  it('stopped by a database failure, still says what it stored and which files to load again', async () => {
    // The database fails one transaction (a fault injected by a trigger, as a restart or a
    // lost connection would): the run stops, and the operator is told how far it got.
    await db.query(`CREATE FUNCTION import_stop() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN RAISE EXCEPTION 'injected failure' USING ERRCODE = '57P01'; END $$`);
    await db.query(`CREATE TRIGGER import_stop BEFORE INSERT ON resource FOR EACH ROW
      WHEN (NEW.id = 'st-stop') EXECUTE FUNCTION import_stop()`);
    try {
      const folder = join(inputs, 'stopped');
      await mkdir(folder);
      const patient = (id: string) => ({ resourceType: 'Patient', id, name: [{ family: 'Stop' }] });
      const transaction = (id: string) => ({
        resourceType: 'Bundle',
        type: 'transaction',
        entry: [{ resource: patient(id), request: { method: 'PUT', url: `Patient/${id}` } }],
      });
      await writeFile(join(folder, 'a.ndjson'), ndjson(patient('st-a'), { resourceType: 'Foo' }));
      await writeFile(join(folder, 'b.json'), JSON.stringify(transaction('st-stop')));
      await writeFile(join(folder, 'c.json'), JSON.stringify(transaction('st-c')));
      const result = await runImport('--concurrency', '1', folder);
      expect(result.code).not.toBe(0);
      expect(result.stdout).toContain('Stopped: imported 1 of 4 resources from 3 files');
      expect(result.stdout).toContain('1 rejected');
      expect(result.stderr).toMatch(/a\.ndjson line 2: 404 /);
      expect(result.stderr).toContain('Not imported, or not wholly: import these again');
      expect(result.stderr).toMatch(/\n {2}\S*b\.json\n {2}\S*c\.json\n/);
      expect(result.stderr).not.toMatch(/ {2}\S*a\.ndjson\n/);
    } finally {
      await db.query('DROP TRIGGER import_stop ON resource; DROP FUNCTION import_stop()');
    }
  });

  it('sends again what the database rolled back for a concurrent write (a deadlock), batch or transaction', async () => {
    // Clinicians keep writing during an overnight load: PostgreSQL may roll back one side of a
    // deadlock, and the same write then goes through. Injected once per line by a trigger.
    await db.query(`CREATE SEQUENCE import_fault_dlb1; CREATE SEQUENCE import_fault_dlt1`);
    await db.query(`CREATE FUNCTION import_deadlock() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF nextval(('import_fault_' || NEW.id)::regclass) = 1 THEN
          RAISE EXCEPTION 'injected deadlock' USING ERRCODE = '40P01';
        END IF;
        RETURN NEW;
      END $$`);
    await db.query(`CREATE TRIGGER import_deadlock BEFORE INSERT ON resource FOR EACH ROW
      WHEN (NEW.id IN ('dlb1', 'dlt1')) EXECUTE FUNCTION import_deadlock()`);
    try {
      const folder = join(inputs, 'deadlock');
      await mkdir(folder);
      const patient = (id: string) => ({ resourceType: 'Patient', id, name: [{ family: 'Dl' }] });
      await writeFile(join(folder, 'a.ndjson'), ndjson(patient('dlb1'), patient('dlb2')));
      await writeFile(
        join(folder, 'b.json'),
        JSON.stringify({
          resourceType: 'Bundle',
          type: 'transaction',
          entry: [{ resource: patient('dlt1'), request: { method: 'PUT', url: 'Patient/dlt1' } }],
        }),
      );
      const result = await runImport('--concurrency', '1', folder);
      expect(result.stdout).toContain('Imported 3 of 3 resources from 2 files');
      expect(result.code).toBe(0);
      const { rows } = await db.query<{ id: string }>(
        "SELECT id FROM resource WHERE id LIKE 'dl%' AND NOT deleted ORDER BY id",
      );
      expect(rows.map((row) => row.id)).toEqual(['dlb1', 'dlb2', 'dlt1']);
    } finally {
      await db.query(`DROP TRIGGER import_deadlock ON resource; DROP FUNCTION import_deadlock();
        DROP SEQUENCE import_fault_dlb1; DROP SEQUENCE import_fault_dlt1`);
    }
  });

  it('names the files of a folder it does not read, rather than leaving them out unsaid', async () => {
    // An archive of an export, or a file renamed, held records that were silently not loaded.
    const folder = join(inputs, 'skipped');
    await mkdir(folder);
    await writeFile(
      join(folder, 'Patient.ndjson'),
      ndjson({ resourceType: 'Patient', id: 'sk-1' }),
    );
    await writeFile(join(folder, 'Observation.ndjson.zip'), Buffer.from([0x50, 0x4b, 0x03]));
    await writeFile(join(folder, 'Encounter.ndjson.txt'), '{"resourceType":"Encounter"}\n');
    const result = await runImport(folder);
    expect(result.stdout).toContain('Imported 1 of 1 resources from 1 files');
    expect(result.stderr).toContain(
      'Not read (neither .json, .ndjson nor .ndjson.gz): 2 files in the folders given',
    );
    expect(result.stderr).toMatch(
      /\n {2}\S*Encounter\.ndjson\.txt\n {2}\S*Observation\.ndjson\.zip\n/,
    );
    expect(result.code).toBe(0);
  });

  it('refuses a malformed file before writing anything', async () => {
    const folder = join(inputs, 'broken');
    await mkdir(folder);
    await writeFile(
      join(folder, 'a.json'),
      JSON.stringify({ resourceType: 'Bundle', type: 'transaction', entry: [] }),
    );
    await writeFile(join(folder, 'b.ndjson'), '{"resourceType":"Patient"}\n{not json\n');
    await writeFile(join(folder, 'c.json'), JSON.stringify({ resourceType: 'Patient' }));
    const before = await count('Patient');
    const result = await runImport(folder);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('b.ndjson line 2 is refused as an API request would be');
    expect(result.stderr).toContain('not valid JSON');
    expect(await count('Patient')).toBe(before);
    const notBundle = await runImport(join(folder, 'c.json'));
    expect(notBundle.code).toBe(1);
    expect(notBundle.stderr).toContain('c.json is not a transaction or batch Bundle');
  });

  it('refuses what the API refuses: a rounded decimal, bytes that are not UTF-8, half a surrogate pair', async () => {
    const folder = join(inputs, 'refused');
    await mkdir(folder);
    const patient = '{"resourceType":"Patient","id":"utf-ok","name":[{"family":"Zed"}]}';
    const weight =
      '{"resourceType":"Observation","status":"final","code":{"text":"Weight"},' +
      '"valueQuantity":{"value":9007199254740993}}';
    const cases: [string, Buffer, string][] = [
      [
        'decimal.ndjson',
        Buffer.from(`${patient}\n${weight}\n`),
        'decimal.ndjson line 2 is refused as an API request would be: ' +
          'Observation.valueQuantity.value has more digits',
      ],
      [
        'latin1.ndjson',
        Buffer.concat([
          Buffer.from(`${patient}\r\n{"resourceType":"Patient","name":[{"family":"M`),
          Buffer.from([0xfc]),
          Buffer.from('ller"}]}\r\n'),
        ]),
        'latin1.ndjson line 2 is refused as an API request would be: ' +
          'The request body is not valid UTF-8',
      ],
      [
        'surrogate.json',
        Buffer.from(
          '{"resourceType":"Bundle","type":"batch","entry":[{"resource":' +
            '{"resourceType":"Patient","name":[{"family":"\\ud800"}]},' +
            '"request":{"method":"POST","url":"Patient"}}]}',
        ),
        'surrogate.json is refused as an API request would be: ' +
          'Bundle.entry[0].resource.name[0].family holds half a UTF-16 surrogate pair',
      ],
    ];
    for (const [file, bytes, reason] of cases) {
      await writeFile(join(folder, file), bytes);
      const before = await count('Patient');
      const result = await runImport(join(folder, file));
      expect({ file, code: result.code, stderr: result.stderr }).toEqual({
        file,
        code: 1,
        stderr: expect.stringContaining(reason),
      });
      // The value itself is never echoed, and nothing of the file is stored.
      expect(result.stderr).not.toContain('9007199254740993');
      expect(await count('Patient')).toBe(before);
    }
  });
});
