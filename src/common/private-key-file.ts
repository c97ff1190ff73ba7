import { Logger } from '@nestjs/common';
import { generateKeyPairSync } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { unreadable } from './files.js';

export interface PrivateKeyFile {
  /** The configured file, when the deployment names one: it must exist. */
  configured: string | undefined;
  /** Where a development key is kept when none is configured (under DATA_DIR). */
  fallback: string;
  /** The variable that configures it, for messages. */
  variable: string;
  generate: () => ReturnType<typeof generateKeyPairSync>['privateKey'];
}

/**
 * A PKCS#8 PEM private key: the configured file, or one generated once under DATA_DIR for
 * development. Instances starting together on one DATA_DIR must end up with the same key (or
 * one's tokens or checkpoints would not verify with the other's): the first to create the file
 * wins (exclusive create) and the others read what it wrote.
 */
export async function readOrCreatePrivateKey(file: PrivateKeyFile): Promise<string> {
  const path = file.configured ?? file.fallback;
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    if (file.configured) {
      throw unreadable(file.variable, file.configured, error);
    }
  }
  const pem = file.generate().export({ type: 'pkcs8', format: 'pem' }).toString();
  await mkdir(dirname(path), { recursive: true });
  try {
    await writeFile(path, pem, { mode: 0o600, flag: 'wx' });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    for (let attempt = 0; attempt < 50; attempt++) {
      const existing = await readFile(path, 'utf8');
      if (existing.includes('END PRIVATE KEY')) return existing;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    throw new Error(`The key at ${path} is incomplete`, { cause: error });
  }
  new Logger('Keys').warn(`Generated a key at ${path}; set ${file.variable} in production`);
  return pem;
}
