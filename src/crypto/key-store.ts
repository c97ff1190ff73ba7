import { Logger } from '@nestjs/common';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { chmod, mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { KEY_BYTES, KeyRing, keyIdOf, type MasterKey } from './key-ring.js';

/** What the key store needs to know about the deployment. */
export interface KeySettings {
  masterKeys: string[];
  keyFile: string | undefined;
  embedded: boolean;
  production: boolean;
  dataDir: string;
}

interface KeyFileContent {
  version: 1;
  current: string;
  blindIndexRoot: string;
  keys: { id: string; key: string; createdAt: string }[];
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
    const { masterKeys, keyFile, embedded, production } = this.settings;
    if (masterKeys.length > 0) {
      const keys = masterKeys.map((encoded) => toMasterKey(encoded));
      const first = keys[0] as MasterKey;
      const last = keys[keys.length - 1] as MasterKey;
      return new KeyRing(keys, first.id, last.id);
    }
    if (keyFile) {
      return ringOf(await readKeyFile(keyFile), keyFile);
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
    return ringOf(await readKeyFile(path), path);
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
    const content = await readKeyFile(path);
    const key = newKey();
    content.keys.push(key);
    content.current = key.id;
    await writeKeyFile(path, content);
    ring.addCurrent(toMasterKey(key.key));
    return key.id;
  }
}

function newKey(): KeyFileContent['keys'][number] {
  const material = randomBytes(KEY_BYTES);
  return {
    id: keyIdOf(material),
    key: material.toString('base64'),
    createdAt: new Date().toISOString(),
  };
}

function toMasterKey(encoded: string): MasterKey {
  const material = Buffer.from(encoded, 'base64');
  if (material.length !== KEY_BYTES) {
    throw new KeyConfigError(
      `Invalid configuration: each PHI key must be ${KEY_BYTES} bytes of base64`,
    );
  }
  return { id: keyIdOf(material), material };
}

function ringOf(content: KeyFileContent, path: string): KeyRing {
  // Synchronous on purpose: it runs inside a decrypt, rarely (see KeyRing.refreshFor).
  const reload = (): { keys: MasterKey[]; currentId: string } => {
    const latest = parseKeyFile(readFileSync(path, 'utf8'), path);
    return { keys: keysOf(latest), currentId: latest.current };
  };
  return new KeyRing(keysOf(content), content.current, content.blindIndexRoot, reload);
}

function keysOf(content: KeyFileContent): MasterKey[] {
  return content.keys.map((entry) => ({ ...toMasterKey(entry.key), id: entry.id }));
}

async function readKeyFile(path: string): Promise<KeyFileContent> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    throw new KeyConfigError(`Invalid configuration: PHI key file ${path} cannot be read`);
  }
  const mode = (await stat(path)).mode & 0o077;
  if (mode !== 0) {
    logger.warn(`PHI key file ${path} is readable by group or others; chmod 600 it`);
  }
  return parseKeyFile(text, path);
}

function parseKeyFile(text: string, path: string): KeyFileContent {
  const content = JSON.parse(text) as Partial<KeyFileContent>;
  if (
    content.version !== 1 ||
    !Array.isArray(content.keys) ||
    !content.current ||
    !content.blindIndexRoot
  ) {
    throw new KeyConfigError(
      `Invalid configuration: PHI key file ${path} is not a CareVault key file`,
    );
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

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}
