import { randomBytes } from 'node:crypto';
import { FieldCipher, PhiDecryptionError, type CipherContext } from './field-cipher.js';
import { KeyRing, keyIdOf, type MasterKey } from './key-ring.js';

function newKey(): MasterKey {
  const material = randomBytes(32);
  return { id: keyIdOf(material), material };
}

const rowA: CipherContext = { table: 'resource', column: 'content', row: ['Patient', 'a', '1'] };
const rowB: CipherContext = { table: 'resource', column: 'content', row: ['Patient', 'b', '1'] };
const ENVELOPE = /^cv1\.k[0-9a-f]{12}\.[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]{22}$/;

describe('FieldCipher', () => {
  const key = newKey();
  const cipher = new FieldCipher(new KeyRing([key], key.id, key.id));

  it('round-trips text, including non-ASCII and the empty string', () => {
    for (const text of ['{"name":"Zoë Ærøskøbing"}', '', '🩺'.repeat(1000)]) {
      expect(cipher.decrypt(cipher.encrypt(text, rowA), rowA)).toBe(text);
    }
  });

  it('writes a versioned envelope naming the key, with a fresh IV each time', () => {
    const one = cipher.encrypt('same', rowA);
    const two = cipher.encrypt('same', rowA);
    expect(one).toMatch(ENVELOPE);
    expect(one.split('.')[1]).toBe(key.id);
    expect(one).not.toBe(two);
    expect(one).not.toContain('same');
  });

  it('never repeats an IV, across refills of the pool they are cut from', () => {
    const ivs = Array.from({ length: 2000 }, () => cipher.encrypt('same', rowA).split('.')[2]);
    expect(new Set(ivs).size).toBe(ivs.length);
  });

  it('refuses a ciphertext moved to another row, column, table or version', () => {
    const envelope = cipher.encrypt('{"ssn":"123-45-6789"}', rowA);
    const elsewhere: CipherContext[] = [
      rowB,
      { ...rowA, column: 'other' },
      { ...rowA, table: 'resource_history' },
      { ...rowA, row: ['Patient', 'a', '2'] },
    ];
    for (const context of elsewhere) {
      expect(() => cipher.decrypt(envelope, context)).toThrow(PhiDecryptionError);
    }
  });

  it('refuses a ciphertext with any single byte flipped', () => {
    const envelope = cipher.encrypt('{"name":"Jane"}', rowA);
    const [version, keyId, iv, body, tag] = envelope.split('.') as [
      string,
      string,
      string,
      string,
      string,
    ];
    for (const index of [2, 3, 4] as const) {
      const bytes = Buffer.from([iv, body, tag][index - 2] as string, 'base64url');
      bytes[0] = (bytes[0] as number) ^ 0x01;
      const parts = [version, keyId, iv, body, tag];
      parts[index] = bytes.toString('base64url');
      expect(() => cipher.decrypt(parts.join('.'), rowA)).toThrow(
        new PhiDecryptionError(
          'Value in resource.content failed authentication: it was altered or belongs to another row or column',
        ),
      );
    }
  });

  it('names the location, never the data, when a value is not an envelope or the key is unknown', () => {
    expect(() => cipher.decrypt('{"name":"Jane"}', rowA)).toThrow(
      'Value in resource.content is not a PHI envelope',
    );
    const stranger = new FieldCipher(ringOf(newKey()));
    expect(() => stranger.decrypt(cipher.encrypt('x', rowA), rowA)).toThrow(
      /unknown key k[0-9a-f]{12}$/,
    );
  });

  it('keeps decrypting old values after rotation while new values use the new key', () => {
    const old = newKey();
    const ring = new KeyRing([old], old.id, old.id);
    const rotating = new FieldCipher(ring);
    const before = rotating.encrypt('before', rowA);
    const next = newKey();
    ring.addCurrent(next);
    const after = rotating.encrypt('after', rowA);
    expect(FieldCipher.keyIdOf(before)).toBe(old.id);
    expect(FieldCipher.keyIdOf(after)).toBe(next.id);
    expect(rotating.decrypt(before, rowA)).toBe('before');
    expect(rotating.decrypt(after, rowA)).toBe('after');
  });

  it('under the benchmark switch stores plaintext that only a switched cipher reads back', () => {
    const unencrypted = new FieldCipher(new KeyRing([key], key.id, key.id), {
      skipForBenchmark: true,
    });
    const envelope = unencrypted.encrypt('{"name":"Zoë"}', rowA);
    expect(envelope).toMatch(ENVELOPE);
    expect(unencrypted.decrypt(envelope, rowA)).toBe('{"name":"Zoë"}');
    expect(() => cipher.decrypt(envelope, rowA)).toThrow(
      /stored unencrypted by a benchmark \(PHI_ENCRYPTION_BENCHMARK_SKIP\)/,
    );
  });
});

function ringOf(key: MasterKey): KeyRing {
  return new KeyRing([key], key.id, key.id);
}
