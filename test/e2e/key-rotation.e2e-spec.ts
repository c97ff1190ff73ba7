import pg from 'pg';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataSource } from 'typeorm';
import { KeyRing, keyIdOf } from '../../src/crypto/key-ring.js';
import { KeyRotationService } from '../../src/crypto/key-rotation.service.js';
import { KeyStore } from '../../src/crypto/key-store.js';
import { UnitOfWork } from '../../src/database/unit-of-work.js';
import { FhirService } from '../../src/fhir/fhir.service.js';
import { HL7_USER } from '../../src/hl7/hl7-user.js';
import { buildPatient } from '../support/factories.js';
import { createUser, enableMfa, loginWithMfa, tokenFor } from '../support/auth.js';
import { authorizedHttp, type HttpFn } from '../support/http.js';
import { startCliHost, type CliHost } from '../support/cli.js';
import { BUILT, childEnv, runNode } from '../support/process.js';
import { createScratchDatabase, type ScratchDatabase } from '../support/scratch-database.js';
import { withEnv } from '../support/env.js';
import { untilWaitingForLock } from '../support/locks.js';
import { createTestApp, type TestApp } from '../support/test-app.js';

let http: HttpFn;

/** A version 1 key file holding one key, current and blind-index root. */
async function writeKeyFile(path: string, key: Buffer): Promise<void> {
  const id = keyIdOf(key);
  await writeFile(
    path,
    JSON.stringify({
      version: 1,
      current: id,
      blindIndexRoot: id,
      keys: [{ id, key: key.toString('base64'), createdAt: new Date().toISOString() }],
    }),
    { mode: 0o600 },
  );
}

describe('PHI key rotation (npm run cli -- keys:rotate)', () => {
  let database: ScratchDatabase;
  let dir: string;
  let keyFile: string;
  let restoreEnv: () => void;
  let testApp: TestApp | undefined;
  const firstKey = randomBytes(32);

  beforeAll(async () => {
    database = await createScratchDatabase();
    dir = await mkdtemp(join(tmpdir(), 'carevault-rotation-'));
    keyFile = join(dir, 'keys.json');
    await writeKeyFile(keyFile, firstKey);
    restoreEnv = withEnv({
      DATABASE_URL: database.url,
      PHI_MASTER_KEY: undefined,
      PHI_KEY_FILE: keyFile,
    });
  });

  afterAll(async () => {
    await host?.close();
    await testApp?.close();
    restoreEnv();
    await database.drop();
    await rm(dir, { recursive: true, force: true });
  });

  const cliEnv = (): Record<string, string> =>
    childEnv({ DATABASE_URL: database.url, PHI_KEY_FILE: keyFile, LOG_LEVEL: 'silent' });
  /** The built CLI in a process of its own. */
  function cli(...args: string[]): ReturnType<typeof runNode> {
    return runNode(BUILT.cli, args, cliEnv());
  }
  /** The same command through one built CLI process (see startCliHost). */
  let host: CliHost | undefined;
  async function cliHosted(...args: string[]): ReturnType<CliHost['run']> {
    host ??= await startCliHost();
    return host.run(args, cliEnv());
  }

  async function keyUsage(): Promise<Map<string, number>> {
    const status = await cliHosted('keys:status');
    expect(status.code).toBe(0);
    const usage = new Map<string, number>();
    // The lines of counts (table.column, key, rows); those before them name the keys.
    for (const line of status.stdout.split('\n').filter((l) => l.includes('\t'))) {
      const [, keyId, rows] = line.split('\t');
      usage.set(keyId!, (usage.get(keyId!) ?? 0) + Number(rows));
    }
    return usage;
  }

  it('re-encrypts every row under a new key; old and new rows read the same; a resumed run has nothing left', async () => {
    testApp = await createTestApp();
    http = authorizedHttp(await tokenFor(testApp, 'doctor'));
    const fhir = `${testApp.url}/fhir`;
    const ids: string[] = [];
    for (let i = 0; i < 7; i++) {
      const created = await http('POST', `${fhir}/Patient`, { body: buildPatient() });
      ids.push(created.body.id);
    }
    const first = (await http('GET', `${fhir}/Patient/${ids[0]}`)).body;
    await http('PUT', `${fhir}/Patient/${ids[0]}`, { body: { ...first, active: false } });
    await http('DELETE', `${fhir}/Patient/${ids[1]}`);
    const before = await Promise.all(
      ids.slice(2).map(async (id) => (await http('GET', `${fhir}/Patient/${id}`)).body),
    );
    // 6 current rows with content (one is deleted) and 8 versions with content (one deletion).
    expect(await keyUsage()).toEqual(new Map([[keyIdOf(firstKey), 6 + 8]]));

    // Rotate while the service runs: it must keep reading what is re-encrypted under it.
    const rotated = await cli('keys:rotate');
    expect(rotated.stderr).not.toMatch(/error/i);
    expect(rotated.code).toBe(0);
    const newKeyId = /Key (k[0-9a-f]{12}) is now current/.exec(rotated.stdout)?.[1];
    expect(newKeyId).toBeDefined();
    expect(rotated.stdout).toContain(`Re-encrypted 14 rows under key ${newKeyId}`);
    expect(await keyUsage()).toEqual(new Map([[newKeyId, 14]]));

    const after = await Promise.all(
      ids.slice(2).map(async (id) => (await http('GET', `${fhir}/Patient/${id}`)).body),
    );
    expect(after).toEqual(before);
    // Having met the new key, the running service also writes with it.
    const rewritten = await http('PUT', `${fhir}/Patient/${ids[2]}`, {
      body: { ...before[0], gender: 'other' },
    });
    expect(rewritten.status).toBe(200);
    expect(await keyUsage()).toEqual(new Map([[newKeyId, 15]]));

    const resumed = await cliHosted('keys:rotate', '--resume');
    expect(resumed.code).toBe(0);
    expect(resumed.stdout).toContain('Re-encrypted 0 rows');

    await testApp.close();
    testApp = await createTestApp();
    const restarted = await http('GET', `${testApp.url}/fhir/Patient/${ids[3]}`);
    expect(restarted.body).toEqual(before[1]);
    expect(
      (await http('GET', `${testApp.url}/fhir/Patient/${ids[0]}/_history/1`)).body.active,
    ).toBe(true);
    expect((await http('GET', `${testApp.url}/fhir/Patient/${ids[1]}`)).status).toBe(410);
    const versions = await testApp.app
      .get(DataSource)
      .query(`SELECT count(*)::int AS n FROM resource_history`);
    expect(versions[0].n).toBe(10);
  });

  it('resumes an interrupted re-encryption where it stopped', async () => {
    const app = testApp!.app;
    const ring = app.get(KeyRing);
    const rotation = app.get(KeyRotationService);
    const newId = await app.get(KeyStore).addCurrentKey(ring);
    const interrupted = rotation.reencryptAll((progress) => {
      if (progress.done > 0) {
        throw new Error('interrupted');
      }
    });
    await expect(interrupted).rejects.toThrow('interrupted');
    const partial = await rotation.usage();
    expect(partial.filter((u) => u.keyId === newId).length).toBeGreaterThan(0);
    expect(partial.filter((u) => u.keyId !== newId).length).toBeGreaterThan(0);

    const finished = await cliHosted('keys:rotate', '--resume');
    expect(finished.code).toBe(0);
    expect((await rotation.usage()).every((u) => u.keyId === newId)).toBe(true);
    expect(
      (await http('GET', `${testApp!.url}/fhir/Patient/_history?_count=20`)).body.entry,
    ).toHaveLength(10);
  });

  it('waits for a row another transaction holds locked rather than leave it under the old key', async () => {
    const app = testApp!.app;
    const ring = app.get(KeyRing);
    const rotation = app.get(KeyRotationService);
    const newId = await app.get(KeyStore).addCurrentKey(ring);
    const holder = new pg.Client({ connectionString: database.url });
    await holder.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('SELECT 1 FROM resource ORDER BY id LIMIT 1 FOR UPDATE');
      const rotating = rotation.reencryptAll(() => undefined);
      await new Promise((resolve) => setTimeout(resolve, 500));
      await holder.query('COMMIT');
      await rotating;
    } finally {
      await holder.end();
    }
    expect((await rotation.usage()).filter((u) => u.keyId !== newId)).toEqual([]);
  });

  it('counts and re-encrypts export files too; one under a key not held is 410, not a 500', async () => {
    const doctor = await createUser(testApp!, ['doctor']);
    const secret = await enableMfa(testApp!, doctor);
    const token = (await loginWithMfa(testApp!, doctor, secret)).access_token;
    const as = { headers: { authorization: `Bearer ${token}` } };
    const kickedOff = await http('GET', `${testApp!.url}/fhir/Patient/$export`, {
      headers: { ...as.headers, prefer: 'respond-async', accept: 'application/fhir+json' },
    });
    expect(kickedOff.status).toBe(202);
    let manifest: { output: { url: string; count: number }[] } | undefined;
    for (let attempt = 0; attempt < 200 && !manifest; attempt++) {
      const polled = await http('GET', kickedOff.headers.get('content-location')!, as);
      if (polled.status === 200) manifest = polled.body;
      else await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const [file] = manifest!.output;
    const exportLines = async (): Promise<string[]> =>
      (await cliHosted('keys:status')).stdout
        .split('\n')
        .filter((line) => line.startsWith('export_chunk.lines\t'));
    const before = testApp!.app.get(KeyRing).currentId;
    expect(await exportLines()).toEqual([`export_chunk.lines\t${before}\t${file!.count}`]);

    const rotated = await cli('keys:rotate');
    expect(rotated.code).toBe(0);
    const newKeyId = /Key (k[0-9a-f]{12}) is now current/.exec(rotated.stdout)![1]!;
    expect(await exportLines()).toEqual([`export_chunk.lines\t${newKeyId}\t${file!.count}`]);
    const downloaded = await http('GET', file!.url, as);
    expect(downloaded.status).toBe(200);
    expect(downloaded.text.trim().split('\n')).toHaveLength(file!.count);

    // As a key retired would leave it: a line under a key id no key file holds.
    const job = /\$export-file\/([0-9a-f-]+)\//.exec(file!.url)![1];
    await testApp!.app
      .get(DataSource)
      .query(
        `UPDATE export_chunk SET lines = replace(lines, $2, 'cv1.k0123456789ab.') WHERE job_id = $1`,
        [job, `cv1.${newKeyId}.`],
      );
    const gone = await http('GET', file!.url, as);
    expect(gone.status).toBe(410);
    expect(gone.body.issue[0].diagnostics).toMatch(/retired: start a new export/);
  });

  it('refuses to start with keys that cannot read the PHI stored, naming the key and where', async () => {
    // Every value is under the newest key now: the key file restored from before the rotations,
    // and a PHI_MASTER_KEY of some other deployment, both lack it.
    const current = testApp!.app.get(KeyRing).currentId;
    const oldFile = join(dir, 'keys-before-rotation.json');
    await writeKeyFile(oldFile, firstKey);
    const service = (keys: Record<string, string>) =>
      runNode(
        BUILT.main,
        [],
        childEnv({ DATABASE_URL: database.url, DATA_DIR: dir, PORT: '0', ...keys }),
      );
    const restored = await service({ PHI_KEY_FILE: oldFile });
    expect(restored.code).toBe(1);
    expect(restored.stderr).toContain(
      `The database holds PHI encrypted under keys that the key file ${oldFile} does not have: ${current} (`,
    );
    expect(restored.stderr).toMatch(/resource\.content/);
    const other = await service({ PHI_MASTER_KEY: randomBytes(32).toString('base64') });
    expect(other.code).toBe(1);
    expect(other.stderr).toContain(`keys that PHI_MASTER_KEY does not have: ${current} (`);
    // The running service, which holds the key, reads as before.
    const listed = await http('GET', `${testApp!.url}/fhir/Patient?_count=1`);
    expect(listed.status).toBe(200);
  });

  it('reports values another instance wrote under the old key meanwhile, and exits 1 until none is left', async () => {
    const app = testApp!.app;
    const data = app.get(DataSource);
    // The previous test's file is under a key no one holds; an export file of the service's
    // key is re-encrypted last, so holding it locked keeps the run waiting past every table.
    await data.query('DELETE FROM export_job');
    const doctor = await createUser(testApp!, ['doctor']);
    const secret = await enableMfa(testApp!, doctor);
    const token = (await loginWithMfa(testApp!, doctor, secret)).access_token;
    const as = { headers: { authorization: `Bearer ${token}` } };
    const kickedOff = await http('GET', `${testApp!.url}/fhir/Patient/$export`, {
      headers: { ...as.headers, prefer: 'respond-async', accept: 'application/fhir+json' },
    });
    expect(kickedOff.status).toBe(202);
    for (let attempt = 0; attempt < 200; attempt++) {
      if ((await http('GET', kickedOff.headers.get('content-location')!, as)).status === 200) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const oldKey = app.get(KeyRing).currentId;
    const holder = new pg.Client({ connectionString: database.url });
    await holder.connect();
    let rotated: Awaited<ReturnType<typeof cli>>;
    try {
      await holder.query('BEGIN');
      await holder.query('SELECT 1 FROM export_chunk LIMIT 1 FOR UPDATE');
      const rotating = cli('keys:rotate');
      await untilWaitingForLock(data, 'keys:rotate', '%export_chunk%FOR UPDATE%');
      // This instance has not met the new key yet: it writes with the old one, behind the run.
      await app
        .get(UnitOfWork)
        .run(() =>
          app
            .get(FhirService)
            .create({ ...HL7_USER, roles: ['doctor'] }, 'Patient', buildPatient()),
        );
      await holder.query('COMMIT');
      rotated = await rotating;
    } finally {
      await holder.end();
    }
    const newKey = /Key (k[0-9a-f]{12}) is now current/.exec(rotated.stdout)![1]!;
    expect(rotated.code).toBe(1);
    expect(rotated.stdout).toContain(
      `Rotation not complete: 2 value(s) still under key(s) ${oldKey}, written since by an instance`,
    );
    expect(rotated.stdout).toContain(`resource.content\t${oldKey}\t1\n`);
    expect(rotated.stdout).toContain(`resource_history.content\t${oldKey}\t1\n`);
    expect((await keyUsage()).get(oldKey)).toBe(2);

    // Once the instance writes with the new key (it has met a value under it), a resumed run
    // catches what it left behind, and says the old key protects nothing.
    expect((await http('GET', `${testApp!.url}/fhir/Patient?_count=1`)).status).toBe(200);
    const resumed = await cliHosted('keys:rotate', '--resume');
    expect(resumed.code).toBe(0);
    expect(resumed.stdout).toContain('Re-encrypted 2 rows');
    expect(resumed.stdout).toContain(`Rotation complete: every PHI value is under key ${newKey}`);
    const [audited] = await data.query<{ detail: string }[]>(
      `SELECT detail FROM audit_event WHERE subtype = 'keys:rotate' ORDER BY chain_seq DESC LIMIT 2`,
    );
    expect(audited!.detail).toBe('resume rewritten=2 left=0');
  });
});
