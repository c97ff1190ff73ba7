import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { keyIdOf } from '../../src/crypto/key-ring.js';
import { buildPatient } from '../support/factories.js';
import { tokenFor } from '../support/auth.js';
import { authorizedHttp } from '../support/http.js';
import { BUILT, childEnv, runNode } from '../support/process.js';
import { createScratchDatabase, type ScratchDatabase } from '../support/scratch-database.js';
import { withEnv } from '../support/env.js';
import { createTestApp } from '../support/test-app.js';

/**
 * The blind-index root keys every search index, HL7 resend hash and conditional-write lock.
 * Until 2026-12-06 only a key file's root was guarded: a PHI_MASTER_KEY whose last key was
 * retired (the README's way of retiring a key) started with another root, and searches found
 * nothing while conditional creates made duplicates.
 */
describe('Blind-index root', () => {
  let database: ScratchDatabase;
  let dir: string;
  let restoreEnv: () => void;
  const first = randomBytes(32);
  const second = randomBytes(32);
  const [firstId, secondId] = [keyIdOf(first), keyIdOf(second)];
  const ring = (...keys: Buffer[]): string => keys.map((key) => key.toString('base64')).join(',');

  beforeAll(async () => {
    database = await createScratchDatabase();
    dir = await mkdtemp(join(tmpdir(), 'carevault-root-'));
    restoreEnv = withEnv({
      DATABASE_URL: database.url,
      PHI_MASTER_KEY: ring(first),
      PHI_KEY_FILE: undefined,
    });
  });

  afterAll(async () => {
    restoreEnv();
    await database.drop();
    await rm(dir, { recursive: true, force: true });
  });

  const env = (keys: Record<string, string>): Record<string, string> =>
    childEnv({
      DATABASE_URL: database.url,
      DATA_DIR: dir,
      PORT: '0',
      LOG_LEVEL: 'silent',
      ...keys,
    });

  /** A version 1 key file holding `keys`, the first current, `root` the blind-index root. */
  async function keyFile(name: string, root: Buffer, keys: Buffer[]): Promise<string> {
    const path = join(dir, name);
    await writeFile(
      path,
      JSON.stringify({
        version: 1,
        current: keyIdOf(keys[0]!),
        blindIndexRoot: keyIdOf(root),
        keys: keys.map((key) => ({
          id: keyIdOf(key),
          key: key.toString('base64'),
          createdAt: new Date().toISOString(),
        })),
      }),
      { mode: 0o600 },
    );
    return path;
  }

  it('is recorded at the first start and a ring whose root differs is refused, naming it', async () => {
    const family = `Root${randomBytes(4).toString('hex')}`;
    const app = await createTestApp();
    try {
      const http = authorizedHttp(await tokenFor(app, 'doctor'));
      const created = await http('POST', `${app.url}/fhir/Patient`, {
        body: buildPatient({ family }),
      });
      expect(created.status).toBe(201);
    } finally {
      await app.close();
    }

    // The README's rotation with PHI_MASTER_KEY: the new key first, restart, re-encrypt.
    const rotated = await runNode(
      BUILT.cli,
      ['keys:rotate', '--resume'],
      env({
        PHI_MASTER_KEY: ring(second, first),
      }),
    );
    expect(rotated.code).toBe(0);
    const status = await runNode(
      BUILT.cli,
      ['keys:status'],
      env({
        PHI_MASTER_KEY: ring(second, first),
      }),
    );
    expect(status.code).toBe(0);
    expect(status.stdout).toContain(`blind-index root: ${firstId} (cannot be retired`);
    const counted = status.stdout.split('\n').filter((line) => line.includes('\t'));
    expect(counted.length).toBeGreaterThan(0);
    expect(counted.every((line) => line.split('\t')[1] === secondId)).toBe(true);

    // Every value is under the second key now: retiring the first is what keys:status invites.
    const retired = await runNode(BUILT.main, [], env({ PHI_MASTER_KEY: ring(second) }));
    expect(retired.code).toBe(1);
    expect(retired.stderr).toContain(
      `The blind-index root of this database is key ${firstId}; PHI_MASTER_KEY's is ${secondId}`,
    );
    expect(retired.stderr).toContain(`put key ${firstId} back as the last key of PHI_MASTER_KEY`);
    const statusRetired = await runNode(
      BUILT.cli,
      ['keys:status'],
      env({
        PHI_MASTER_KEY: ring(second),
      }),
    );
    expect(statusRetired.stdout).toContain(`the database's is ${firstId}`);
    // Nor does a command that writes index rows run under it (a rebuild would key them all by
    // the wrong root).
    const reindexed = await runNode(
      BUILT.cli,
      ['search:reindex'],
      env({ PHI_MASTER_KEY: ring(second) }),
    );
    expect(reindexed.code).toBe(1);
    expect(reindexed.stderr).toContain(`The blind-index root of this database is key ${firstId}`);

    // The same with a key file that names another root.
    const other = await keyFile('other-root.json', second, [second, first]);
    const fromFile = await runNode(BUILT.main, [], env({ PHI_KEY_FILE: other }));
    expect(fromFile.code).toBe(1);
    expect(fromFile.stderr).toContain(`the key file ${other}'s is ${secondId}`);

    // With the root kept, searches find what was indexed before the rotation.
    restoreEnv();
    restoreEnv = withEnv({
      DATABASE_URL: database.url,
      PHI_MASTER_KEY: undefined,
      PHI_KEY_FILE: await keyFile('rotated.json', first, [second, first]),
    });
    const kept = await createTestApp();
    try {
      const http = authorizedHttp(await tokenFor(kept, 'doctor'));
      const found = await http('GET', `${kept.url}/fhir/Patient?family=${family}`);
      expect(found.body.total ?? found.body.entry?.length).toBe(1);
    } finally {
      await kept.close();
    }
  });

  it('refuses a key that takes the root id without its material (check value differs)', async () => {
    // A version 1 file names its keys itself: the id alone does not prove the key.
    const impostor = randomBytes(32);
    const path = join(dir, 'impostor.json');
    await writeFile(
      path,
      JSON.stringify({
        version: 1,
        current: secondId,
        blindIndexRoot: firstId,
        keys: [
          { id: secondId, key: second.toString('base64'), createdAt: new Date().toISOString() },
          { id: firstId, key: impostor.toString('base64'), createdAt: new Date().toISOString() },
        ],
      }),
      { mode: 0o600 },
    );
    const result = await runNode(BUILT.main, [], env({ PHI_KEY_FILE: path }));
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/blind-index root/);
  });
});
