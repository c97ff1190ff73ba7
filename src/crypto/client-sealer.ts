import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import type { KeyRing } from './key-ring.js';

const ENVELOPE_VERSION = 'cvs1';
const IV_BYTES = 12;
const TAG_BYTES = 16;

/** What a sealed value is for (and whose): authenticated with it, so it opens nowhere else. */
export type SealPurpose = readonly string[];

export class SealError extends Error {
  override readonly name = 'SealError';
}

/**
 * Seals values that CareVault hands to clients and reads back from them (`_state` of a search's
 * links, a pending authorization in the sign-in form, an EHR `launch`): AES-256-GCM under a key
 * derived from the master key with a label of its own (KeyRing.sealKey), never the PHI data key.
 * The envelope `cvs1.<iv>.<ciphertext>.<tag>` names no key: opening tries the current key, then
 * the others of the ring, so a value sealed before a rotation still opens while its key is held;
 * one sealed under a retired key no longer does (each expires within the hour anyway).
 */
export class ClientSealer {
  private readonly keys = new Map<string, Buffer>();

  constructor(private readonly ring: KeyRing) {}

  seal(plaintext: string, purpose: SealPurpose): string {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.key(this.ring.currentId), iv, {
      authTagLength: TAG_BYTES,
    });
    cipher.setAAD(aadOf(purpose));
    const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return [ENVELOPE_VERSION, b64(iv), b64(body), b64(cipher.getAuthTag())].join('.');
  }

  /** Throws SealError when the value is not one sealed here for `purpose`, or was altered. */
  open(sealed: string, purpose: SealPurpose): string {
    const parts = sealed.split('.');
    const [version, iv, body, tag] = parts;
    if (parts.length !== 4 || version !== ENVELOPE_VERSION || !iv || body === undefined || !tag) {
      throw new SealError('Not a sealed value');
    }
    const ids = [this.ring.currentId, ...this.ring.ids.filter((id) => id !== this.ring.currentId)];
    for (const id of ids) {
      try {
        const decipher = createDecipheriv('aes-256-gcm', this.key(id), unb64(iv), {
          authTagLength: TAG_BYTES,
        });
        decipher.setAAD(aadOf(purpose));
        decipher.setAuthTag(unb64(tag));
        return Buffer.concat([decipher.update(unb64(body)), decipher.final()]).toString('utf8');
      } catch {
        // Another key of the ring, or altered: the next key, then SealError.
      }
    }
    throw new SealError('The sealed value was altered, is for something else, or its key is gone');
  }

  private key(id: string): Buffer {
    let key = this.keys.get(id);
    if (!key) {
      key = this.ring.sealKey(id);
      this.keys.set(id, key);
    }
    return key;
  }
}

function aadOf(purpose: SealPurpose): Buffer {
  return Buffer.from(JSON.stringify([ENVELOPE_VERSION, ...purpose]));
}

function b64(buffer: Buffer): string {
  return buffer.toString('base64url');
}

function unb64(text: string): Buffer {
  return Buffer.from(text, 'base64url');
}
