import { randomBytes } from 'node:crypto';
import { ClientSealer, SealError } from './client-sealer.js';
import { FieldCipher, PhiDecryptionError } from './field-cipher.js';
import { KeyRing, keyIdOf, type MasterKey } from './key-ring.js';

function newKey(): MasterKey {
  const material = randomBytes(32);
  return { id: keyIdOf(material), material };
}

describe('ClientSealer', () => {
  const key = newKey();
  const ring = new KeyRing([key], key.id, key.id);
  const sealer = new ClientSealer(ring);

  it('round-trips a value for its purpose, and refuses it for another or altered', () => {
    const sealed = sealer.seal('{"state":"x"}', ['search-state', 'Patient', 'u1']);
    expect(sealer.open(sealed, ['search-state', 'Patient', 'u1'])).toBe('{"state":"x"}');
    expect(() => sealer.open(sealed, ['search-state', 'Patient', 'u2'])).toThrow(SealError);
    const altered = sealed.slice(0, -2) + (sealed.endsWith('AA') ? 'BA' : 'AA');
    expect(() => sealer.open(altered, ['search-state', 'Patient', 'u1'])).toThrow(SealError);
  });

  it('seals under a key of its own, neither the PHI data key nor the master key', () => {
    const seal = ring.sealKey(key.id);
    expect(seal).toHaveLength(32);
    expect(seal.equals(ring.dataKey(key.id))).toBe(false);
    expect(seal.equals(key.material)).toBe(false);
  });

  it('names no key, and is no PHI envelope: the PHI cipher cannot read it, nor it a PHI value', () => {
    const sealed = sealer.seal('chosen by anyone', ['smart-authorize-request']);
    expect(sealed).toMatch(/^cvs1\.[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]{22}$/);
    expect(sealed).not.toContain(key.id);
    const cipher = new FieldCipher(ring);
    const context = { table: 'smart', column: 'authorize', row: ['request'] };
    // Even rewritten as a PHI envelope under the key's id, the PHI data key does not open it.
    const [, iv, body, tag] = sealed.split('.');
    expect(() => cipher.decrypt(sealed, context)).toThrow(PhiDecryptionError);
    expect(() => cipher.decrypt(['cv1', key.id, iv, body, tag].join('.'), context)).toThrow(
      PhiDecryptionError,
    );
    const phi = cipher.encrypt('phi', context);
    const [, , phiIv, phiBody, phiTag] = phi.split('.');
    expect(() =>
      sealer.open(['cvs1', phiIv, phiBody, phiTag].join('.'), ['smart-authorize-request']),
    ).toThrow(SealError);
  });

  it('opens what was sealed before a rotation while the old key is held', () => {
    const old = newKey();
    const before = new ClientSealer(new KeyRing([old], old.id, old.id)).seal('v', ['p']);
    const rotated = new KeyRing([old, key], key.id, old.id);
    expect(new ClientSealer(rotated).open(before, ['p'])).toBe('v');
    const retired = new KeyRing([key], key.id, key.id);
    expect(() => new ClientSealer(retired).open(before, ['p'])).toThrow(SealError);
  });
});
