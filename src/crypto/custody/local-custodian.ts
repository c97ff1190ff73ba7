import { Logger } from '@nestjs/common';
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { openToOthers, readFailure } from '../../common/files.js';
import { KEY_BYTES, keyIdOf } from '../key-ring.js';
import {
  CustodyError,
  IV_BYTES,
  TAG_BYTES,
  WRAP_CONTEXT,
  type CustodyDescription,
  type KeyCustodian,
} from './key-custodian.js';

/**
 * A KEK in a file (base64, 32 bytes), for development and for deployments without an HSM: keep
 * the file on another mount than the data and the key file (a secrets volume), so that a copy
 * of the disk with the data holds no usable key.
 */
export class LocalCustodian implements KeyCustodian {
  readonly description: CustodyDescription;

  private constructor(private readonly kek: Buffer) {
    this.description = { provider: 'local', key: keyIdOf(kek) };
  }

  static fromFile(file: string | undefined): LocalCustodian {
    if (!file) {
      throw new CustodyError(
        'Invalid configuration: KEY_CUSTODY=local needs KEK_FILE (openssl rand -base64 32 > file)',
      );
    }
    let kek: Buffer;
    try {
      kek = Buffer.from(readFileSync(file, 'utf8').trim(), 'base64');
    } catch (error) {
      throw new CustodyError(
        `Invalid configuration: KEK_FILE ${file} cannot be read (${readFailure(error)})`,
      );
    }
    if (kek.length !== KEY_BYTES) {
      throw new CustodyError(
        `Invalid configuration: KEK_FILE ${file} must hold ${KEY_BYTES} bytes of base64`,
      );
    }
    // A warning, as for the key file: the KEK unwraps every PHI key, so anyone who may read it
    // and the key file reads all PHI. The compliance report fails its key custody check.
    const mode = openToOthers(file);
    if (mode) {
      new Logger('KeyCustody').warn(
        `KEK_FILE ${file} is open to group or others (mode ${mode}); chmod 600 it`,
      );
    }
    return new LocalCustodian(kek);
  }

  wrap(material: Buffer): Buffer {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.kek, iv).setAAD(WRAP_CONTEXT);
    return Buffer.concat([iv, cipher.update(material), cipher.final(), cipher.getAuthTag()]);
  }

  unwrap(wrapped: Buffer): Buffer {
    const iv = wrapped.subarray(0, IV_BYTES);
    const tag = wrapped.subarray(wrapped.length - TAG_BYTES);
    const decipher = createDecipheriv('aes-256-gcm', this.kek, iv).setAAD(WRAP_CONTEXT);
    decipher.setAuthTag(tag);
    try {
      return Buffer.concat([
        decipher.update(wrapped.subarray(IV_BYTES, wrapped.length - TAG_BYTES)),
        decipher.final(),
      ]);
    } catch {
      throw new CustodyError(
        'A PHI key does not unwrap with KEK_FILE: wrong KEK or altered key file',
      );
    }
  }

  close(): void {
    this.kek.fill(0);
  }
}
