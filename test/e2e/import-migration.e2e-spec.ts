import { randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { gzipSync } from 'node:zlib';
import { join } from 'node:path';
import pg from 'pg';
import { startCliHost, type CliHost } from '../support/cli.js';
import { serviceEnv, type Finished } from '../support/process.js';
import { createScratchDatabase, type ScratchDatabase } from '../support/scratch-database.js';

/** Resources as a bulk export writes them: one JSON object per line. */
const ndjson = (...resources: object[]) => resources.map((r) => JSON.stringify(r)).join('\n');

/** Lines that name what the import refused: `file line n: status reason`. */
const refusals = (result: Finished) =>
  result.stderr.split('\n').filter((line) => /(line \d+|entry \d+|bundle): \d{3} /.test(line));

/** A hospital's history loaded by a migration engineer: what goes wrong in a real export. */
describe('cli import: a hospital history', () => {
  let database: ScratchDatabase;
  let dataDir: string;
  let inputs: string;
  let env: Record<string, string>;
  let db: pg.Client;
  let host: CliHost;
  const runImport = (args: string[], extra: Record<string, string> = {}): Promise<Finished> =>
    host.run(['import', ...args], { ...env, ...extra });

  const versions = async (id: string): Promise<number> => {
    const { rows } = await db.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM resource_history WHERE id = $1',
      [id],
    );
    return rows[0]!.n;
  };

  beforeAll(async () => {
    host = await startCliHost();
    database = await createScratchDatabase();
    dataDir = await mkdtemp(join(tmpdir(), 'carevault-migration-'));
    inputs = join(dataDir, 'inputs');
    await mkdir(inputs);
    env = serviceEnv(database.url, dataDir);
    db = new pg.Client({ connectionString: database.url });
    await db.connect();
  });

  afterAll(async () => {
    await host?.close();
    await db.end();
    await database.drop();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('reports lines that repeat a resource id, in one file or across files, and keeps the first', async () => {
    // Two source records mapped to one id: the later line silently replaced the earlier one's
    // data (a second version), and the migration engineer never learnt that a patient was lost.
    const folder = join(inputs, 'repeated');
    await mkdir(folder);
    const patient = (id: string, family: string) => ({
      resourceType: 'Patient',
      id,
      name: [{ family }],
    });
    await writeFile(
      join(folder, 'a.ndjson'),
      ndjson(patient('rp-1', 'First'), patient('rp-2', 'Other'), patient('rp-1', 'Second')),
    );
    await writeFile(join(folder, 'b.ndjson'), ndjson(patient('rp-1', 'Third')));
    const result = await runImport(['--concurrency', '1', folder]);
    expect(result.stdout).toContain('Imported 2 of 4 resources from 2 files');
    expect(result.stdout).toContain('2 rejected');
    expect(refusals(result)).toEqual([
      expect.stringMatching(/a\.ndjson line 3: 409 .*Patient\/rp-1 .*a\.ndjson line 1/),
      expect.stringMatching(/b\.ndjson line 1: 409 .*Patient\/rp-1 .*a\.ndjson line 1/),
    ]);
    expect(result.code).toBe(1);
    expect(await versions('rp-1')).toBe(1);
    expect(await versions('rp-2')).toBe(1);
  });

  it('refuses a line larger than BODY_LIMIT by its number, before anything is written', async () => {
    // A line of hundreds of megabytes (a file with no newline at all) was gathered whole in
    // memory and then failed with a RangeError naming no line; the API refuses it as too large.
    const folder = join(inputs, 'oversized');
    await mkdir(folder);
    const big = {
      resourceType: 'Patient',
      id: 'os-2',
      name: [{ family: 'Big', given: ['x'.repeat(5000)] }],
    };
    await writeFile(
      join(folder, 'a.ndjson'),
      `${ndjson({ resourceType: 'Patient', id: 'os-1' }, big, { resourceType: 'Patient', id: 'os-3' })}\n`,
    );
    const result = await runImport([folder], { BODY_LIMIT: '4096' });
    expect(result.stderr).toContain(
      'a.ndjson line 2 is refused as an API request would be: it is larger than BODY_LIMIT',
    );
    expect(result.stderr).not.toContain('xxxx');
    expect(result.code).toBe(1);
    expect(await versions('os-1')).toBe(0);
  });

  it("with --stable-ids, leaves the shared Bundle's Organization as it is: patient Bundles repeating it neither overwrite it nor add versions", async () => {
    // Synthea writes each hospital into hospitalInformation*.json (with its utilization
    // extensions) and again, leaner, into every patient Bundle that refers to it, under the same
    // uuid. Each patient Bundle's copy replaced the hospital's (its extensions lost, whichever
    // patient came last winning) and every re-run added two versions of it.
    const folder = join(inputs, 'synthea-like');
    await mkdir(folder);
    const organization = randomUUID();
    const transaction = (...entry: object[]) =>
      JSON.stringify({ resourceType: 'Bundle', type: 'transaction', entry });
    const hospital = (extension?: object[]) => ({
      fullUrl: `urn:uuid:${organization}`,
      resource: { resourceType: 'Organization', id: organization, name: 'General', extension },
      request: { method: 'POST', url: 'Organization' },
    });
    const utilization = [{ url: 'https://example.org/utilization', valueInteger: 703 }];
    await writeFile(join(folder, 'hospitalInformation.json'), transaction(hospital(utilization)));
    const patients = [randomUUID(), randomUUID()];
    for (const [i, patient] of patients.entries()) {
      await writeFile(
        join(folder, `patient${i}.json`),
        transaction(hospital(), {
          fullUrl: `urn:uuid:${patient}`,
          resource: {
            resourceType: 'Patient',
            id: patient,
            managingOrganization: { reference: `urn:uuid:${organization}` },
          },
          request: { method: 'POST', url: 'Patient' },
        }),
      );
    }
    for (const run of [1, 2]) {
      const result = await runImport(['--stable-ids', '--concurrency', '2', folder]);
      expect({ run, stdout: result.stdout, code: result.code, err: refusals(result) }).toEqual({
        run,
        stdout: expect.stringContaining('Imported 5 of 5 resources from 3 files'),
        code: 0,
        err: [],
      });
      expect(await versions(organization)).toBe(1);
    }
    const { rows } = await db.query<{ id: string }>(
      `SELECT DISTINCT resource_id AS id FROM search_reference
        WHERE resource_type = 'Patient' AND target_type = 'Organization' AND target_id = $1
        ORDER BY 1`,
      [organization],
    );
    expect(rows.map((row) => row.id)).toEqual([...patients].sort());
    expect(await versions(patients[0]!)).toBe(1);
  });

  it('reads a gzip-compressed NDJSON export, and refuses a truncated one by name', async () => {
    // Bulk Data exports are often gzip files (Patient.ndjson.gz), which were only named as
    // not read: the engineer had to unpack gigabytes first.
    const folder = join(inputs, 'gzip');
    await mkdir(folder);
    const patients = ndjson(
      { resourceType: 'Patient', id: 'gz-1' },
      { resourceType: 'Patient', id: 'gz-2' },
    );
    await writeFile(join(folder, 'Patient.ndjson.gz'), gzipSync(patients));
    const result = await runImport([folder]);
    expect(result.stdout).toContain('Imported 2 of 2 resources from 1 files');
    expect(result.stderr).not.toContain('Not read');
    expect(result.code).toBe(0);
    expect(await versions('gz-2')).toBe(1);

    const truncated = join(inputs, 'Truncated.ndjson.gz');
    await writeFile(truncated, gzipSync(patients).subarray(0, 20));
    const broken = await runImport([truncated]);
    expect(broken.stderr).toContain('Truncated.ndjson.gz is not a whole gzip file');
    expect(broken.code).toBe(1);
  });

  it('names a UTF-16 file as UTF-16, not as text that is not UTF-8', async () => {
    // Exported by a Windows tool ("Unicode"): the engineer was told of bad UTF-8 on line 1.
    const folder = join(inputs, 'utf16');
    await mkdir(folder);
    const text = `\ufeff${ndjson({ resourceType: 'Patient', id: 'u16-1' })}\n`;
    await writeFile(join(folder, 'Patient.ndjson'), Buffer.from(text, 'utf16le'));
    const result = await runImport([folder]);
    expect(result.stderr).toContain('Patient.ndjson is UTF-16');
    expect(result.stderr).toContain('convert it to UTF-8');
    expect(result.code).toBe(1);
    expect(await versions('u16-1')).toBe(0);
  });
});
