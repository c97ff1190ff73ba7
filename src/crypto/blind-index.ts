import { createHmac } from 'node:crypto';
import type { KeyRing } from './key-ring.js';

/**
 * Keyed blind indexes: HMAC-SHA256 of an already normalized value under a key derived for one
 * field only, so equal values in two fields do not produce equal index entries, and the index key
 * is never the encryption key.
 */
export class BlindIndexer {
  private readonly keys = new Map<string, Buffer>();

  constructor(private readonly ring: KeyRing) {}

  /**
   * @param field - a stable field name such as `Patient.name`; part of the key derivation.
   * @param normalizedValue - the value after the caller's normalization (case, accents, spacing).
   * @returns base64url of the 32-byte HMAC.
   */
  compute(field: string, normalizedValue: string): string {
    let key = this.keys.get(field);
    if (!key) {
      key = this.ring.blindIndexKey(field);
      this.keys.set(field, key);
    }
    return createHmac('sha256', key).update(normalizedValue, 'utf8').digest('base64url');
  }
}
