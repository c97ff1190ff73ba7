import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalCustodian } from './custody/local-custodian.js';
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

  it('names the blind-index root when a key file lacks it: that first key cannot be retired', async () => {
    const store = new KeyStore(settings({}));
    const ring = await store.load();
    const root = ring.blindIndexRootId;
    await store.addCurrentKey(ring);
    const path = join(dataDir, GENERATED_KEY_FILE);
    const content = JSON.parse(await readFile(path, 'utf8')) as { keys: { id: string }[] };
    content.keys = content.keys.filter((key) => key.id !== root);
    await writeFile(path, JSON.stringify(content), { mode: 0o600 });

    const load = new KeyStore(settings({})).load();
    await expect(load).rejects.toThrow(KeyConfigError);
    await expect(load).rejects.toThrow(
      `PHI key file ${path} lacks key ${root}, its blind-index root: every search index is keyed by it, so it cannot be retired; put it back`,
    );
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

  it('names the reason a configured key file or KEK file cannot be read', async () => {
    const missing = join(dataDir, 'missing.json');
    await expect(new KeyStore(settings({ keyFile: missing })).load()).rejects.toThrow(
      `PHI_KEY_FILE ${missing} cannot be read (ENOENT)`,
    );
    expect(() => LocalCustodian.fromFile(missing)).toThrow(
      `KEK_FILE ${missing} cannot be read (ENOENT)`,
    );
  });

  it('refuses PHI_MASTER_KEY and PHI_KEY_FILE together, whether the file exists or not', async () => {
    const store = new KeyStore(
      settings({
        masterKeys: [randomBytes(32).toString('base64')],
        keyFile: join(dataDir, 'no-such-keys.json'),
        embedded: false,
      }),
    );
    await expect(store.load()).rejects.toThrow(
      'PHI_MASTER_KEY and PHI_KEY_FILE are both set: set the one that holds the keys',
    );
  });

  it('cannot add keys that come from the environment', async () => {
    const store = new KeyStore(settings({ masterKeys: [randomBytes(32).toString('base64')] }));
    await expect(store.addCurrentKey(await store.load())).rejects.toThrow(/PHI_MASTER_KEY/);
  });

  describe('with a key-encryption key (KEY_CUSTODY=local)', () => {
    const custodian = async (): Promise<LocalCustodian> => {
      const file = join(dataDir, `kek-${Math.random()}`);
      await writeFile(file, randomBytes(32).toString('base64'));
      return LocalCustodian.fromFile(file);
    };

    it('keeps only wrapped keys in the file and unwraps them at load and after a rotation', async () => {
      const kek = await custodian();
      const keyFile = join(dataDir, 'wrapped.json');
      const store = new KeyStore(settings({ keyFile, embedded: false, custodian: kek }));
      const [id] = await store.writeWrapped(keyFile);
      const text = await readFile(keyFile, 'utf8');
      const file = JSON.parse(text);
      expect(file).toMatchObject({ version: 2, custody: kek.description, current: id });
      expect(file.keys[0]).not.toHaveProperty('key');
      const ring = await store.load();
      expect(ring.currentId).toBe(id);
      // The KEK unwraps the key the file names; the key itself appears nowhere in the file.
      const material = kek.unwrap(Buffer.from(file.keys[0].wrapped, 'base64'));
      expect(keyIdOf(material)).toBe(id);
      expect(text).not.toContain(material.toString('base64'));
      expect(text).not.toContain(material.toString('hex'));

      const added = await store.addCurrentKey(ring);
      const reloaded = await new KeyStore(
        settings({ keyFile, embedded: false, custodian: kek }),
      ).load();
      expect(reloaded.currentId).toBe(added);
      expect(reloaded.blindIndexRootId).toBe(id);
      expect(reloaded.dataKey(added).equals(ring.dataKey(added))).toBe(true);
      await expect(store.writeWrapped(keyFile)).rejects.toThrow('is never overwritten');
    });

    it('refuses another KEK, a plaintext file under custody, and a wrapped file without it', async () => {
      const keyFile = join(dataDir, 'wrapped.json');
      await new KeyStore(settings({ keyFile, custodian: await custodian() })).writeWrapped(keyFile);
      await expect(
        new KeyStore(settings({ keyFile, custodian: await custodian() })).load(),
      ).rejects.toThrow(/KEY_CUSTODY must name that key/);
      await expect(new KeyStore(settings({ keyFile })).load()).rejects.toThrow(
        /wrapped by the local key .*KEY_CUSTODY must name that key/,
      );
      const plain = await new KeyStore(settings({})).load();
      const generated = join(dataDir, GENERATED_KEY_FILE);
      expect(plain.ids).toHaveLength(1);
      await expect(
        new KeyStore(settings({ keyFile: generated, custodian: await custodian() })).load(),
      ).rejects.toThrow(/plaintext keys while KEY_CUSTODY is set/);
    });

    it('wraps the keys of a plaintext source, keeping which is current and the index root', async () => {
      const source = new KeyStore(settings({}));
      const plainRing = await source.load();
      await source.addCurrentKey(plainRing);
      const { ring, keys } = await source.plaintextKeys();
      const kek = await custodian();
      const keyFile = join(dataDir, 'wrapped.json');
      const target = new KeyStore(settings({ keyFile, custodian: kek }));
      expect(await target.writeWrapped(keyFile, ring, keys)).toEqual(plainRing.ids);
      const wrapped = await target.load();
      expect(wrapped.currentId).toBe(plainRing.currentId);
      expect(wrapped.blindIndexRootId).toBe(plainRing.blindIndexRootId);
      expect(
        wrapped.dataKey(wrapped.currentId).equals(plainRing.dataKey(plainRing.currentId)),
      ).toBe(true);
    });
  });
});
