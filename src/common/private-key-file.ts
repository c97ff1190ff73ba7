import { Logger } from '@nestjs/common';
import { createPrivateKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { ConfigError } from '../config/env.schema.js';
import { openToOthers, unreadable } from './files.js';

export interface PrivateKeyFile {
  /** The configured file, when the deployment names one: it must exist. */
  configured: string | undefined;
  /** Where a development key is kept when none is configured (under DATA_DIR). */
  fallback: string;
  /** The variable that configures it, for messages. */
  variable: string;
  generate: () => ReturnType<typeof generateKeyPairSync>['privateKey'];
  /** The kind of key it must hold, for messages ("an Ed25519 private key"). */
  kind: string;
  accepts: (key: KeyObject) => boolean;
}

/**
 * The private key in the file, checked at start-up: a file that held no PEM private key (a
 * certificate, a public key, text) or a key of another kind stopped the service with OpenSSL's
 * error and a stack, naming no variable. The file's text never appears in the message.
 */
export async function readPrivateKey(
  file: PrivateKeyFile,
  options: { quiet?: boolean } = {},
): Promise<KeyObject> {
  const pem = await readOrCreatePrivateKey(file);
  const where = file.configured
    ? `${file.variable} ${file.configured}`
    : `${file.fallback} (used while ${file.variable} is unset)`;
  // A warning, as for the PHI key file and the KEK: whoever may read a signing key signs tokens
  // (any user's), id_tokens or audit checkpoints as this deployment. compliance:report fails
  // key custody on it. Quiet for the check before start-up, whose provider warns next.
  const mode = openToOthers(file.configured ?? file.fallback);
  if (mode && !options.quiet) {
    new Logger('Keys').warn(`${where} is open to group or others (mode ${mode}); chmod 600 it`);
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'invalid';
    throw new ConfigError(
      `Invalid configuration: ${where} does not hold a PEM private key${notPrivate(pem)} (${code})`,
    );
  }
  if (!file.accepts(key)) {
    throw new ConfigError(`Invalid configuration: ${where} must hold ${file.kind}`);
  }
  return key;
}

/** What a PEM file holds instead of a private key, when its header says so. */
function notPrivate(pem: string): string {
  if (pem.includes('-----BEGIN CERTIFICATE-----')) return ': it holds a certificate';
  if (/-----BEGIN (RSA |EC )?PUBLIC KEY-----/.test(pem)) return ': it holds a public key';
  return '';
}

/**
 * A PKCS#8 PEM private key: the configured file, or one generated once under DATA_DIR for
 * development. Instances starting together on one DATA_DIR must end up with the same key (or
 * one's tokens or checkpoints would not verify with the other's): the first to create the file
 * wins (exclusive create) and the others read what it wrote.
 */
async function readOrCreatePrivateKey(file: PrivateKeyFile): Promise<string> {
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
