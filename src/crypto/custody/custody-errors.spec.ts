import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCustodian } from './key-custodian.js';

/** A custody setting that is wrong is a configuration error, said as every other one is. */
describe('key custody configuration errors', () => {
  const dir = mkdtempSync(join(tmpdir(), 'carevault-custody-'));
  const missing = join(dir, 'missing');

  it('names KEK_FILE as invalid configuration when it is missing, unreadable or not a key', async () => {
    const short = join(dir, 'short');
    writeFileSync(short, Buffer.alloc(16).toString('base64'));
    await expect(createCustodian({ provider: 'local' })).rejects.toThrow(
      /^Invalid configuration: KEY_CUSTODY=local needs KEK_FILE/,
    );
    await expect(createCustodian({ provider: 'local', kekFile: missing })).rejects.toThrow(
      `Invalid configuration: KEK_FILE ${missing} cannot be read (ENOENT)`,
    );
    await expect(createCustodian({ provider: 'local', kekFile: short })).rejects.toThrow(
      /^Invalid configuration: KEK_FILE .* must hold 32 bytes of base64$/,
    );
  });

  it('names PKCS11_PIN_FILE as invalid configuration when it cannot be read', async () => {
    await expect(createCustodian({ provider: 'pkcs11' })).rejects.toThrow(
      /^Invalid configuration: KEY_CUSTODY=pkcs11 needs PKCS11_MODULE/,
    );
    const pkcs11 = { module: missing, tokenLabel: 't', pinFile: missing, keyLabel: 'k' };
    // Without graphene-pk11 (an optional dependency) the PIN is never read.
    await expect(createCustodian({ provider: 'pkcs11', pkcs11 })).rejects.toThrow(
      /^(Invalid configuration: PKCS11_PIN_FILE .* cannot be read \(ENOENT\)|PKCS#11 support)/,
    );
  });
});
