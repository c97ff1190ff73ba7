import { createCipheriv, createDecipheriv, randomFillSync } from 'node:crypto';
import type { KeyRing } from './key-ring.js';

const ENVELOPE_VERSION = 'cv1';
const IV_BYTES = 12;
const TAG_BYTES = 16;

/**
 * What a PostgreSQL CHECK constraint accepts in a PHI column: `cv1.<key id>.<iv>.<ciphertext>.<tag>`
 * in base64url. Anything else, such as plaintext written around the PHI subscriber, is rejected.
 */
export const ENVELOPE_SQL_PATTERN =
  '^cv1\\.k[0-9a-f]{12}\\.[A-Za-z0-9_-]{16}\\.[A-Za-z0-9_-]*\\.[A-Za-z0-9_-]{22}$';

/** Where a ciphertext belongs. It is authenticated with the data, so a copy elsewhere fails. */
export interface CipherContext {
  table: string;
  column: string;
  /** Primary key values, then any bound columns such as the version. */
  row: readonly string[];
}

export class PhiDecryptionError extends Error {
  override readonly name = 'PhiDecryptionError';
}

/**
 * The key id of envelopes written by a benchmark with PHI_ENCRYPTION_BENCHMARK_SKIP: the body is
 * the plaintext, the IV and tag are zeros. Only a cipher with the same switch reads them.
 */
export const UNENCRYPTED_KEY_ID = 'k000000000000';
const ZERO_IV = b64(Buffer.alloc(IV_BYTES));
const ZERO_TAG = b64(Buffer.alloc(TAG_BYTES));

/**
 * Random IVs cut from a pool refilled from the CSPRNG 4 KiB at a time, each handed out once, as
 * Node's randomUUID does: one randomBytes call per value was 1.4% of an HL7 message's CPU
 * (every resource is encrypted twice, for its version and its current row).
 */
const ivPool = Buffer.alloc(IV_BYTES * 341);
let ivOffset = ivPool.length;

function nextIv(): Buffer {
  if (ivOffset + IV_BYTES > ivPool.length) {
    randomFillSync(ivPool);
    ivOffset = 0;
  }
  const iv = Buffer.from(ivPool.subarray(ivOffset, ivOffset + IV_BYTES));
  ivOffset += IV_BYTES;
  return iv;
}

/**
 * AES-256-GCM field encryption with a random 96-bit IV and a 128-bit tag. The key id travels in the
 * envelope so that old keys keep decrypting after rotation.
 */
export class FieldCipher {
  constructor(
    private readonly keys: KeyRing,
    private readonly options: { skipForBenchmark?: boolean } = {},
  ) {}

  get currentKeyId(): string {
    return this.keys.currentId;
  }

  encrypt(plaintext: string, context: CipherContext): string {
    if (this.options.skipForBenchmark) {
      const body = b64(Buffer.from(plaintext, 'utf8'));
      return [ENVELOPE_VERSION, UNENCRYPTED_KEY_ID, ZERO_IV, body, ZERO_TAG].join('.');
    }
    const keyId = this.keys.currentId;
    const iv = nextIv();
    const cipher = createCipheriv('aes-256-gcm', this.keys.dataKey(keyId), iv, {
      authTagLength: TAG_BYTES,
    });
    cipher.setAAD(aadOf(keyId, context));
    const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return [ENVELOPE_VERSION, keyId, b64(iv), b64(body), b64(cipher.getAuthTag())].join('.');
  }

  /** Throws PhiDecryptionError (naming only the location, never the data) when anything is off. */
  decrypt(envelope: string, context: CipherContext): string {
    const where = `${context.table}.${context.column}`;
    const parts = envelope.split('.');
    const [version, keyId, iv, body, tag] = parts;
    if (
      parts.length !== 5 ||
      version !== ENVELOPE_VERSION ||
      !keyId ||
      !iv ||
      body === undefined ||
      !tag
    ) {
      throw new PhiDecryptionError(`Value in ${where} is not a PHI envelope`);
    }
    if (keyId === UNENCRYPTED_KEY_ID) {
      if (!this.options.skipForBenchmark) {
        throw new PhiDecryptionError(
          `Value in ${where} was stored unencrypted by a benchmark (PHI_ENCRYPTION_BENCHMARK_SKIP)`,
        );
      }
      return unb64(body).toString('utf8');
    }
    if (!this.keys.has(keyId) && !this.keys.refreshFor(keyId)) {
      throw new PhiDecryptionError(`Value in ${where} was encrypted with unknown key ${keyId}`);
    }
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.keys.dataKey(keyId), unb64(iv), {
        authTagLength: TAG_BYTES,
      });
      decipher.setAAD(aadOf(keyId, context));
      decipher.setAuthTag(unb64(tag));
      return Buffer.concat([decipher.update(unb64(body)), decipher.final()]).toString('utf8');
    } catch {
      throw new PhiDecryptionError(
        `Value in ${where} failed authentication: it was altered or belongs to another row or column`,
      );
    }
  }

  /** Whether this cipher holds the key of that id (the key source is not read again). */
  knowsKey(keyId: string): boolean {
    return keyId === UNENCRYPTED_KEY_ID
      ? this.options.skipForBenchmark === true
      : this.keys.has(keyId);
  }

  /** Whether a value under that key id can be decrypted, re-reading the key source as decrypt does. */
  canDecryptUnder(keyId: string): boolean {
    return this.knowsKey(keyId) || (keyId !== UNENCRYPTED_KEY_ID && this.keys.refreshFor(keyId));
  }

  /** The key id an envelope was written with, without decrypting it. */
  static keyIdOf(envelope: string): string | undefined {
    return envelope.split('.', 2)[1];
  }
}

function aadOf(keyId: string, context: CipherContext): Buffer {
  // JSON keeps the parts unambiguous whatever characters ids contain.
  return Buffer.from(
    JSON.stringify([ENVELOPE_VERSION, keyId, context.table, context.column, context.row]),
  );
}

function b64(buffer: Buffer): string {
  return buffer.toString('base64url');
}

function unb64(text: string): Buffer {
  return Buffer.from(text, 'base64url');
}
