import { KeyConfigError } from '../key-store.js';

/** Names the key-encryption key that wraps the PHI master keys; recorded in the key file. */
export interface CustodyDescription {
  provider: 'local' | 'pkcs11';
  /** The KEK's label in the HSM, or the local KEK's id: never the key itself. */
  key: string;
}

/**
 * Holds the key-encryption key (KEK) that wraps the PHI master keys, so that the key file
 * beside the data holds only ciphertext. With PKCS#11 the KEK never leaves the HSM: wrapping and
 * unwrapping happen inside it.
 *
 * Synchronous on purpose: a running instance unwraps a key another instance added during a
 * rotation from inside a decrypt (KeyRing.refreshFor). PKCS#11 calls are synchronous; a remote
 * KMS would unwrap every key at start and on a timer instead.
 */
export interface KeyCustodian {
  readonly description: CustodyDescription;
  wrap(material: Buffer): Buffer;
  unwrap(wrapped: Buffer): Buffer;
  close(): void;
}

/** What a custodian is built from (KEY_CUSTODY and the provider's settings). */
export interface CustodySettings {
  provider: 'local' | 'pkcs11';
  kekFile?: string | undefined;
  pkcs11?: {
    module: string;
    tokenLabel: string;
    pinFile: string;
    keyLabel: string;
  };
}

/** Additional data bound into every wrapped key: a wrapped blob is only a PHI master key. */
export const WRAP_CONTEXT = Buffer.from('carevault/phi-master-key/v1');

/** Wrapped form: 12-byte IV, ciphertext, 16-byte GCM tag. */
export const IV_BYTES = 12;
export const TAG_BYTES = 16;

/** A KeyConfigError: the entry points print it as one line, like any key misconfiguration. */
export class CustodyError extends KeyConfigError {}

export async function createCustodian(
  settings: CustodySettings,
  options: { createKek?: boolean } = {},
): Promise<KeyCustodian> {
  if (settings.provider === 'local') {
    const { LocalCustodian } = await import('./local-custodian.js');
    return LocalCustodian.fromFile(settings.kekFile);
  }
  if (!settings.pkcs11) {
    throw new CustodyError(
      'Invalid configuration: KEY_CUSTODY=pkcs11 needs PKCS11_MODULE, PKCS11_TOKEN_LABEL and PKCS11_PIN_FILE',
    );
  }
  let provider: typeof import('./pkcs11-custodian.js');
  try {
    provider = await import('./pkcs11-custodian.js');
  } catch (error) {
    throw new CustodyError(
      `PKCS#11 support is not installed (graphene-pk11, an optional dependency built at npm ci with a C++ toolchain): ${(error as Error).message}`,
    );
  }
  return provider.Pkcs11Custodian.open(settings.pkcs11, options);
}
