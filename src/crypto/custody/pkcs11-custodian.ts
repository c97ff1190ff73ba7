import {
  AesGcm240Params,
  KeyGenMechanism,
  KeyType,
  Module,
  ObjectClass,
  SessionFlag,
  UserType,
  type SecretKey,
  type Session,
} from 'graphene-pk11';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { readFailure } from '../../common/files.js';
import {
  CustodyError,
  IV_BYTES,
  TAG_BYTES,
  WRAP_CONTEXT,
  type CustodyDescription,
  type CustodySettings,
  type KeyCustodian,
} from './key-custodian.js';

type Pkcs11Settings = NonNullable<CustodySettings['pkcs11']>;

/**
 * One PKCS#11 library per process: C_Initialize and C_Finalize act on the whole library, so a
 * second load would share (and a finalize would end) the first one's sessions.
 */
const libraries = new Map<string, { module: Module; users: number }>();

function acquire(path: string): Module {
  const known = libraries.get(path);
  if (known) {
    known.users += 1;
    return known.module;
  }
  let module: Module;
  try {
    module = Module.load(path, 'CareVault');
    module.initialize();
  } catch (error) {
    throw new CustodyError(`PKCS11_MODULE ${path} cannot be loaded: ${(error as Error).message}`);
  }
  libraries.set(path, { module, users: 1 });
  return module;
}

function release(path: string): void {
  const known = libraries.get(path);
  if (known && --known.users === 0) {
    libraries.delete(path);
    known.module.finalize();
  }
}

/**
 * The KEK is an AES-256 key inside the HSM, created sensitive and not extractable: PHI master
 * keys are wrapped and unwrapped by the HSM (AES-GCM, C_Encrypt/C_Decrypt) and the KEK itself
 * is never seen by this process. Tested against SoftHSM2; a hardware HSM's module is the same
 * interface.
 */
export class Pkcs11Custodian implements KeyCustodian {
  readonly description: CustodyDescription;

  private constructor(
    private readonly settings: Pkcs11Settings,
    private readonly session: Session,
    private readonly kek: SecretKey,
  ) {
    this.description = { provider: 'pkcs11', key: settings.keyLabel };
  }

  /** Opens the token by label, logs in, and finds the KEK (or creates it when asked to). */
  static open(settings: Pkcs11Settings, options: { createKek?: boolean } = {}): Pkcs11Custodian {
    const pin = readPin(settings.pinFile);
    const module = acquire(settings.module);
    let session: Session | undefined;
    try {
      const slots = module.getSlots(true);
      let found;
      for (let i = 0; i < slots.length; i++) {
        const slot = slots.items(i);
        // Token labels are padded with spaces to 32 bytes.
        if (slot.getToken().label.trim() === settings.tokenLabel) {
          found = slot;
          break;
        }
      }
      if (!found) {
        throw new CustodyError(`No PKCS#11 token labelled ${settings.tokenLabel}`);
      }
      session = found.open(SessionFlag.SERIAL_SESSION | SessionFlag.RW_SESSION);
      try {
        session.login(pin, UserType.USER);
      } catch (error) {
        // The login is per token and application, not per session: a second custodian in
        // this process finds the token already logged in.
        if (!(error as Error).message.includes('CKR_USER_ALREADY_LOGGED_IN')) {
          throw new CustodyError(
            `PKCS#11 login to ${settings.tokenLabel} failed: ${(error as Error).message}`,
          );
        }
      }
      const kek =
        findKek(session, settings.keyLabel) ??
        (options.createKek ? createKek(session, settings.keyLabel) : undefined);
      if (!kek) {
        throw new CustodyError(
          `The token ${settings.tokenLabel} holds no key labelled ${settings.keyLabel}: create it with keys:init --create-kek`,
        );
      }
      return new Pkcs11Custodian(settings, session, kek);
    } catch (error) {
      session?.close();
      release(settings.module);
      throw error;
    }
  }

  wrap(material: Buffer): Buffer {
    const iv = randomBytes(IV_BYTES);
    const cipher = this.session.createCipher(
      { name: 'AES_GCM', params: new AesGcm240Params(iv, WRAP_CONTEXT, TAG_BYTES * 8) },
      this.kek,
    );
    return Buffer.concat([iv, cipher.once(material, Buffer.alloc(material.length + TAG_BYTES))]);
  }

  unwrap(wrapped: Buffer): Buffer {
    const iv = wrapped.subarray(0, IV_BYTES);
    const sealed = wrapped.subarray(IV_BYTES);
    try {
      const decipher = this.session.createDecipher(
        { name: 'AES_GCM', params: new AesGcm240Params(iv, WRAP_CONTEXT, TAG_BYTES * 8) },
        this.kek,
      );
      // The output buffer must be the input's size, or the token refuses (CKR_BUFFER_TOO_SMALL)
      // and leaves the session's operation open.
      return Buffer.from(decipher.once(sealed, Buffer.alloc(sealed.length)));
    } catch (error) {
      throw new CustodyError(
        `A PHI key does not unwrap with the HSM key ${this.settings.keyLabel}: wrong key or altered key file (${(error as Error).message})`,
      );
    }
  }

  close(): void {
    this.session.close();
    release(this.settings.module);
  }
}

function readPin(file: string): string {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch (error) {
    throw new CustodyError(
      `Invalid configuration: PKCS11_PIN_FILE ${file} cannot be read (${readFailure(error)})`,
    );
  }
}

function findKek(session: Session, label: string): SecretKey | undefined {
  const found = session.find({
    class: ObjectClass.SECRET_KEY,
    keyType: KeyType.AES,
    label,
    token: true,
  });
  if (found.length > 1) {
    throw new CustodyError(`The token holds ${found.length} keys labelled ${label}: keep one`);
  }
  return found.length === 1 ? found.items(0).toType<SecretKey>() : undefined;
}

/** Sensitive and never extractable: the HSM refuses to reveal or export it, even wrapped. */
function createKek(session: Session, label: string): SecretKey {
  return session.generateKey(KeyGenMechanism.AES, {
    class: ObjectClass.SECRET_KEY,
    keyType: KeyType.AES,
    valueLen: 32,
    label,
    id: Buffer.from(label),
    token: true,
    private: true,
    sensitive: true,
    extractable: false,
    modifiable: false,
    encrypt: true,
    decrypt: true,
  });
}
