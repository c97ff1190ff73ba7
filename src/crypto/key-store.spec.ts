import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { keyIdOf } from './key-ring.js';
import { GENERATED_KEY_FILE, KeyConfigError, KeyStore, type KeySettings } from './key-store.js';

describe('KeyStore', () => {
  let dataDir: string;
  const settings = (overrides: Partial<KeySettings>): KeySettings => ({
    masterKeys: [],
    keyFile: undefined,
    embedded: true,
    production: false,
    dataDir,
    ...overrides,
  });

  beforeEach(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'carevault-keys-'));
  });

  afterEach(async () => {
    await rm(dataDir, { recursive: true, force: true });
  });

  it('generates a key file with mode 0600 in embedded development, and reuses it', async () => {
    const first = await new KeyStore(settings({})).load();
    const path = join(dataDir, GENERATED_KEY_FILE);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    const second = await new KeyStore(settings({})).load();
    expect(second.currentId).toBe(first.currentId);
    expect(second.dataKey(second.currentId).equals(first.dataKey(first.currentId))).toBe(true);
  });

  it('refuses to start without a configured key in production or with an external database', async () => {
    await expect(new KeyStore(settings({ production: true })).load()).rejects.toThrow(
      new KeyConfigError(
        'Invalid configuration: PHI_MASTER_KEY or PHI_KEY_FILE must be set when NODE_ENV=production',
      ),
    );
    await expect(new KeyStore(settings({ embedded: false })).load()).rejects.toThrow(
      KeyConfigError,
    );
  });

  it('takes PHI_MASTER_KEY as a list: first key current, last key the blind-index root', async () => {
    const keys = [randomBytes(32), randomBytes(32)];
    const ring = await new KeyStore(
      settings({ masterKeys: keys.map((k) => k.toString('base64')), production: true }),
    ).load();
    expect(ring.currentId).toBe(keyIdOf(keys[0]!));
    expect(ring.blindIndexRootId).toBe(keyIdOf(keys[1]!));
    expect(ring.ids).toHaveLength(2);
  });

  it('adds a new current key to the key file, keeping the old ones and the index root', async () => {
    const store = new KeyStore(settings({}));
    const ring = await store.load();
    const firstId = ring.currentId;
    const newId = await store.addCurrentKey(ring);
    expect(ring.currentId).toBe(newId);
    expect(ring.has(firstId)).toBe(true);
    const reloaded = await new KeyStore(settings({})).load();
    expect(reloaded.currentId).toBe(newId);
    expect(reloaded.blindIndexRootId).toBe(firstId);
    const file = JSON.parse(await readFile(join(dataDir, GENERATED_KEY_FILE), 'utf8'));
    expect(file.keys).toHaveLength(2);
  });

  it('cannot add keys that come from the environment', async () => {
    const store = new KeyStore(settings({ masterKeys: [randomBytes(32).toString('base64')] }));
    await expect(store.addCurrentKey(await store.load())).rejects.toThrow(/PHI_MASTER_KEY/);
  });
});
