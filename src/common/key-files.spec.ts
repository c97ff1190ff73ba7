import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readPublicKeys, type KeyKind } from './key-files.js';

const ED25519: KeyKind = {
  kind: 'an Ed25519 key',
  accepts: (key) => key.asymmetricKeyType === 'ed25519',
};

describe('readPublicKeys', () => {
  let dir: string;
  const ed = generateKeyPairSync('ed25519');
  const publicPem = ed.publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const privatePem = ed.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'key-files-'));
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function read(text: string) {
    const path = join(dir, `keys-${Math.random().toString(36).slice(2)}.pem`);
    await writeFile(path, text);
    return { path, keys: () => readPublicKeys(path, 'AUDIT_TRUSTED_KEYS_FILE', ED25519) };
  }

  it('reads no keys from an absent, an empty or a comment-only file', async () => {
    await expect(readPublicKeys(join(dir, 'missing.pem'), 'X', ED25519)).resolves.toEqual([]);
    await expect((await read('')).keys()).resolves.toEqual([]);
    await expect((await read('\n  \n')).keys()).resolves.toEqual([]);
    await expect((await read('# all keys retired\n')).keys()).resolves.toEqual([]);
  });

  it('reads the public keys of a file', async () => {
    await expect((await read(`# one\n${publicPem}`)).keys()).resolves.toHaveLength(1);
  });

  // Read as "no keys", the service started without the keys the file was meant to add.
  it.each([
    ['a private key', privatePem, ': it holds a private key'],
    ['text', 'not a key\n', ''],
  ])('refuses a file that holds %s and no public key, in one line', async (_what, text, why) => {
    const { path, keys } = await read(text);
    await expect(keys()).rejects.toThrow(
      `Invalid configuration: AUDIT_TRUSTED_KEYS_FILE ${path} holds no PEM public key${why}`,
    );
  });
});
