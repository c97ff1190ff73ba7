import { jest } from '@jest/globals';
import { Logger } from '@nestjs/common';
import { generateKeyPairSync } from 'node:crypto';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readPrivateKey, type PrivateKeyFile } from './private-key-file.js';

describe('readPrivateKey', () => {
  let dir: string;
  let path: string;
  const fileOf = (configured: string): PrivateKeyFile => ({
    configured,
    fallback: join(dir, 'fallback.pem'),
    variable: 'JWT_SIGNING_KEY_FILE',
    generate: () => generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey,
    kind: 'an EC P-256 private key',
    accepts: (key) => key.asymmetricKeyType === 'ec',
  });

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'carevault-private-key-'));
    path = join(dir, 'jwt.pem');
    const key = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    await writeFile(path, key.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  });

  afterEach(async () => {
    jest.restoreAllMocks();
    await rm(dir, { recursive: true, force: true });
  });

  it('warns of a key file open to group or others, as of the PHI key file, unless quiet', async () => {
    const warn = jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
    await readPrivateKey(fileOf(path));
    expect(warn).not.toHaveBeenCalled();
    await chmod(path, 0o644);
    await readPrivateKey(fileOf(path));
    expect(warn).toHaveBeenCalledWith(
      `JWT_SIGNING_KEY_FILE ${path} is open to group or others (mode 644); chmod 600 it`,
    );
    warn.mockClear();
    await readPrivateKey(fileOf(path), { quiet: true });
    expect(warn).not.toHaveBeenCalled();
  });
});
