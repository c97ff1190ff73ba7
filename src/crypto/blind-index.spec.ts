import { randomBytes } from 'node:crypto';
import { BlindIndexer } from './blind-index.js';
import { KeyRing, keyIdOf } from './key-ring.js';

describe('BlindIndexer', () => {
  const material = randomBytes(32);
  const id = keyIdOf(material);
  const ring = new KeyRing([{ id, material }], id, id);
  const indexer = new BlindIndexer(ring);

  it('is deterministic per field and differs between fields', () => {
    expect(indexer.compute('Patient.family', 'smith')).toBe(
      indexer.compute('Patient.family', 'smith'),
    );
    expect(indexer.compute('Patient.family', 'smith')).not.toBe(
      indexer.compute('Patient.given', 'smith'),
    );
    expect(indexer.compute('Patient.family', 'smith')).not.toBe(
      indexer.compute('Patient.family', 'smyth'),
    );
  });

  it('uses a key derived from the root key, not the encryption key, and survives rotation', () => {
    const before = indexer.compute('Patient.identifier', 'ssn|123-45-6789');
    expect(ring.blindIndexKey('Patient.identifier').equals(ring.dataKey(id))).toBe(false);
    const next = randomBytes(32);
    ring.addCurrent({ id: keyIdOf(next), material: next });
    expect(new BlindIndexer(ring).compute('Patient.identifier', 'ssn|123-45-6789')).toBe(before);
    expect(before).not.toContain('123');
    expect(Buffer.from(before, 'base64url')).toHaveLength(32);
  });
});
