import { Logger } from '@nestjs/common';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { chmod, mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { AppConfig } from '../config/config.js';
import type { CustodyDescription, KeyCustodian } from './custody/key-custodian.js';
import { KEY_BYTES, KeyRing, keyIdOf, type MasterKey } from './key-ring.js';
import { exists, unreadable } from '../common/files.js';

/** What the key store needs to know about the deployment. */
export interface KeySettings {
  masterKeys: string[];
  keyFile: string | undefined;
  /** What names keyFile, for messages: PHI_KEY_FILE unless given (keys:wrap --from). */
  keyFileVariable?: string;
  embedded: boolean;
  production: boolean;
  dataDir: string;
  /** With KEY_CUSTODY: the keeper of the KEK that wraps the keys in the key file. */
  custodian?: KeyCustodian | undefined;
  /** No file-mode warning: the service's check before start-up, whose provider warns next. */
  quiet?: boolean;
}

/** Version 1 holds the keys in plaintext; version 2 holds them wrapped by a custodian's KEK. */
type KeyFileContent =
  | {
      version: 1;
      current: string;
      blindIndexRoot: string;
      keys: { id: string; key: string; createdAt: string }[];
    }
  | {
      version: 2;
      custody: CustodyDescription;
      current: string;
      blindIndexRoot: string;
      keys: { id: string; wrapped: string; createdAt: string }[];
    };

/** The key settings of a deployment, from its configuration. */
export function keySettingsOf(config: AppConfig, custodian: KeyCustodian | undefined): KeySettings {
  return {
    masterKeys: config.phiMasterKeys,
    keyFile: config.phiKeyFile,
    embedded: config.databaseUrl === undefined,
    production: config.isProduction,
    dataDir: config.dataDir,
    custodian,
  };
}

export class KeyConfigError extends Error {
  override readonly name = 'KeyConfigError';
}

const logger = new Logger('KeyStore');

export const GENERATED_KEY_FILE = 'phi-keys.json';

/**
 * Where PHI keys come from, in order: PHI_MASTER_KEY (first key current, last key the
 * blind-index root), PHI_KEY_FILE, or (embedded development only) a key file generated under
 * DATA_DIR. Production never generates a key: losing it would lose every record.
 */
export class KeyStore {
  constructor(private readonly settings: KeySettings) {}

  /** The key file in use, or undefined when keys come from the environment. */
  get keyFilePath(): string | undefined {
    if (this.settings.masterKeys.length > 0) {
      return undefined;
    }
    return this.settings.keyFile ?? join(this.settings.dataDir, GENERATED_KEY_FILE);
  }

  async load(): Promise<KeyRing> {
    const { masterKeys, keyFile, embedded, production, custodian } = this.settings;
    if (custodian && (masterKeys.length > 0 || !keyFile)) {
      throw new KeyConfigError(
        'Invalid configuration: with KEY_CUSTODY the PHI keys come wrapped from PHI_KEY_FILE, not from PHI_MASTER_KEY (see keys:init and keys:wrap)',
      );
    }
    if (masterKeys.length > 0 && keyFile) {
      // Which keys encrypt is not for a precedence rule to settle: with both, the file was
      // never read (a path that did not exist started the service) until 2026-12-06.
      throw new KeyConfigError(
        'Invalid configuration: PHI_MASTER_KEY and PHI_KEY_FILE are both set: set the one that holds the keys',
      );
    }
    if (masterKeys.length > 0) {
      const keys = masterKeys.map((encoded) => toMasterKey(encoded));
      const first = keys[0] as MasterKey;
      const last = keys[keys.length - 1] as MasterKey;
      return new KeyRing(keys, first.id, last.id);
    }
    if (keyFile) {
      return this.ringOf(await readKeyFile(this.named(keyFile), !this.settings.quiet), keyFile);
    }
    if (production) {
      throw new KeyConfigError(
        'Invalid configuration: PHI_MASTER_KEY or PHI_KEY_FILE must be set when NODE_ENV=production',
      );
    }
    if (!embedded) {
      throw new KeyConfigError(
        'Invalid configuration: PHI_MASTER_KEY or PHI_KEY_FILE must be set when DATABASE_URL is set',
      );
    }
    const path = this.keyFilePath as string;
    if (!(await exists(path))) {
      const key = newKey();
      await writeKeyFile(path, {
        version: 1,
        current: key.id,
        blindIndexRoot: key.id,
        keys: [key],
      });
      logger.warn(
        `Generated a PHI master key at ${path} (mode 0600). Back it up apart from the database: ` +
          'without it the data cannot be read. Set PHI_MASTER_KEY or PHI_KEY_FILE in production.',
      );
    }
    return this.ringOf(await readKeyFile(this.named(path)), path);
  }

  /**
   * Adds a fresh key to the key file and makes it current, in the file and in `ring`; returns its
   * id. Other running instances adopt it when they first meet a value encrypted under it.
   */
  async addCurrentKey(ring: KeyRing): Promise<string> {
    const path = this.keyFilePath;
    if (!path) {
      throw new KeyConfigError(
        'PHI keys come from PHI_MASTER_KEY: put a new key first in the list, restart, then run keys:rotate --resume',
      );
    }
    const content = await readKeyFile(this.named(path));
    const key = newKey();
    if (content.version === 2) {
      const material = Buffer.from(key.key, 'base64');
      content.keys.push({ id: key.id, wrapped: this.wrap(material), createdAt: key.createdAt });
    } else {
      content.keys.push(key);
    }
    content.current = key.id;
    await writeKeyFile(path, content);
    ring.addCurrent(toMasterKey(key.key));
    return key.id;
  }

  /**
   * Writes a new key file at `path` holding `keys` (or one new key) wrapped by the custodian's
   * KEK: for a new deployment (keys:init) or to wrap the keys of a plaintext source (keys:wrap).
   */
  async writeWrapped(path: string, ring?: KeyRing, keys?: MasterKey[]): Promise<string[]> {
    if (await exists(path)) {
      throw new KeyConfigError(`${path} exists: a key file is never overwritten`);
    }
    const material = keys ?? [toMasterKey(newKey().key)];
    const createdAt = new Date().toISOString();
    const first = material[0] as MasterKey;
    await writeKeyFile(path, {
      version: 2,
      custody: this.custodian.description,
      current: ring?.currentId ?? first.id,
      blindIndexRoot: ring?.blindIndexRootId ?? first.id,
      keys: material.map((key) => ({ id: key.id, wrapped: this.wrap(key.material), createdAt })),
    });
    return material.map((key) => key.id);
  }

  /** Every key of the plaintext source (PHI_MASTER_KEY or a version 1 key file), for keys:wrap. */
  async plaintextKeys(): Promise<{ ring: KeyRing; keys: MasterKey[] }> {
    const { masterKeys } = this.settings;
    if (masterKeys.length > 0) {
      const keys = masterKeys.map((encoded) => toMasterKey(encoded));
      return { ring: await this.load(), keys };
    }
    const path = this.keyFilePath as string;
    const content = await readKeyFile(this.named(path));
    if (content.version !== 1) {
      throw new KeyConfigError(
        `${path} is already wrapped (by ${content.custody.provider} key ${content.custody.key})`,
      );
    }
    return { ring: this.ringOf(content, path), keys: keysOf(content, undefined) };
  }

  /** A key file as messages name it: the variable that configures it, and its path. */
  private named(path: string): KeyFileName {
    const variable =
      path === this.settings.keyFile
        ? (this.settings.keyFileVariable ?? 'PHI_KEY_FILE')
        : 'PHI key file';
    return { variable, path };
  }

  private get custodian(): KeyCustodian {
    const custodian = this.settings.custodian;
    if (!custodian) {
      throw new KeyConfigError(
        'KEY_CUSTODY is not set: there is no key-encryption key to wrap with',
      );
    }
    return custodian;
  }

  private wrap(material: Buffer): string {
    return this.custodian.wrap(material).toString('base64');
  }

  private ringOf(content: KeyFileContent, path: string): KeyRing {
    const custodian = this.settings.custodian;
    // Synchronous on purpose: it runs inside a decrypt, rarely (see KeyRing.refreshFor).
    const reload = (): { keys: MasterKey[]; currentId: string } => {
      const latest = parseKeyFile(readFileSync(path, 'utf8'), this.named(path));
      return { keys: keysOf(latest, custodian), currentId: latest.current };
    };
    return new KeyRing(keysOf(content, custodian), content.current, content.blindIndexRoot, reload);
  }
}

function newKey(): { id: string; key: string; createdAt: string } {
  const material = randomBytes(KEY_BYTES);
  return {
    id: keyIdOf(material),
    key: material.toString('base64'),
    createdAt: new Date().toISOString(),
  };
}

function toMasterKey(encoded: string): MasterKey {
  if (!isKey(encoded)) {
    throw new KeyConfigError(
      `Invalid configuration: each key in PHI_MASTER_KEY must be ${KEY_BYTES} bytes of base64`,
    );
  }
  const material = Buffer.from(encoded, 'base64');
  return { id: keyIdOf(material), material };
}

/** Base64 (strictly: Buffer.from skips what is not) of exactly KEY_BYTES bytes. */
function isKey(encoded: unknown): encoded is string {
  return (
    typeof encoded === 'string' &&
    /^[A-Za-z0-9+/]+={0,2}$/.test(encoded) &&
    Buffer.from(encoded, 'base64').length === KEY_BYTES
  );
}

function keysOf(content: KeyFileContent, custodian: KeyCustodian | undefined): MasterKey[] {
  if (content.version === 1) {
    if (custodian) {
      throw new KeyConfigError(
        'Invalid configuration: PHI_KEY_FILE holds plaintext keys while KEY_CUSTODY is set: wrap them with keys:wrap',
      );
    }
    return content.keys.map((entry) => ({ ...toMasterKey(entry.key), id: entry.id }));
  }
  const { provider, key } = content.custody;
  if (custodian?.description.provider !== provider || custodian.description.key !== key) {
    throw new KeyConfigError(
      `Invalid configuration: PHI_KEY_FILE holds keys wrapped by the ${provider} key ${key}; KEY_CUSTODY must name that key`,
    );
  }
  return content.keys.map((entry) => {
    const material = custodian.unwrap(Buffer.from(entry.wrapped, 'base64'));
    if (material.length !== KEY_BYTES || keyIdOf(material) !== entry.id) {
      throw new KeyConfigError(`PHI key ${entry.id} does not unwrap to the key it names`);
    }
    return { id: entry.id, material };
  });
}

/**
 * Whether `path` holds a key file of plaintext keys (version 1), as DATA_DIR/phi-keys.json does
 * after keys:wrap --from took its keys: the wrapped copy protects nothing while it stays.
 */
export function holdsPlaintextKeys(path: string): boolean {
  try {
    const name = { variable: 'PHI key file', path };
    return parseKeyFile(readFileSync(path, 'utf8'), name).version === 1;
  } catch {
    return false; // absent, unreadable, or not a key file
  }
}

/** A key file and the variable that names it (PHI_KEY_FILE), for messages. */
interface KeyFileName {
  variable: string;
  path: string;
}

async function readKeyFile(name: KeyFileName, warnMode = true): Promise<KeyFileContent> {
  let text: string;
  try {
    text = await readFile(name.path, 'utf8');
  } catch (error) {
    throw unreadable(name.variable, name.path, error);
  }
  const mode = (await stat(name.path)).mode & 0o077;
  if (mode !== 0 && warnMode) {
    logger.warn(`PHI key file ${name.path} is readable by group or others; chmod 600 it`);
  }
  return parseKeyFile(text, name);
}

/**
 * The key file's content, checked whole before any key is used: a file that was not JSON
 * stopped the service with JSON.parse's message, which quotes the file's first characters (a
 * raw key given as PHI_KEY_FILE went to the log), and a key missing, not base64 or not 32
 * bytes, or a current key the file does not hold, with a stack naming no variable.
 */
function parseKeyFile(text: string, name: KeyFileName): KeyFileContent {
  const invalid = (what: string): KeyConfigError =>
    new KeyConfigError(`Invalid configuration: ${name.variable} ${name.path} ${what}`);
  let content: Partial<KeyFileContent>;
  try {
    content = JSON.parse(text) as Partial<KeyFileContent>;
  } catch {
    throw invalid('is not a CareVault key file (not JSON; keys:init and keys:rotate write one)');
  }
  if (
    typeof content !== 'object' ||
    content === null ||
    (content.version !== 1 && content.version !== 2) ||
    !Array.isArray(content.keys) ||
    !content.current ||
    !content.blindIndexRoot
  ) {
    throw invalid('is not a CareVault key file');
  }
  const entries = content.keys as Partial<{ id: string; key: string; wrapped: string }>[];
  entries.forEach((entry, index) => {
    const which = `key ${index + 1} of ${entries.length}`;
    if (typeof entry?.id !== 'string') {
      throw invalid(`has no id for ${which}`);
    }
    if (content.version === 1 && !isKey(entry.key)) {
      throw invalid(`holds ${which} not as ${KEY_BYTES} bytes of base64`);
    }
    if (content.version === 2 && typeof entry.wrapped !== 'string') {
      throw invalid(`holds ${which} without its wrapped key`);
    }
  });
  const ids = new Set(entries.map((entry) => entry.id));
  // A key removed by hand (to retire it) must not be the blind-index root nor the current one.
  if (!ids.has(content.blindIndexRoot)) {
    throw invalid(
      `lacks key ${content.blindIndexRoot}, its blind-index root: every search index is keyed ` +
        'by it, so it cannot be retired; put it back',
    );
  }
  if (!ids.has(content.current)) {
    throw invalid(`lacks its current key ${content.current}`);
  }
  return content as KeyFileContent;
}

/** Writes atomically (temp file + rename) so an interrupted rotation never truncates the keys. */
async function writeKeyFile(path: string, content: KeyFileContent): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const temp = `${path}.${process.pid}.tmp`;
  await writeFile(temp, JSON.stringify(content, null, 2) + '\n', { mode: 0o600 });
  await chmod(temp, 0o600);
  await rename(temp, path);
}
