import { createPublicKey, type KeyObject } from 'node:crypto';
import { appendFile, chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { unreadable } from './files.js';

const PUBLIC_PEM = /-----BEGIN PUBLIC KEY-----[\s\S]*?-----END PUBLIC KEY-----/g;

/**
 * The public keys in a PEM file (concatenated, comments between them allowed); [] if absent. A
 * key whose comment says `expires <ISO date>` is left out once that moment has passed. A file
 * that is there but cannot be read is a ConfigError naming `variable`.
 */
export async function readPublicKeys(
  path: string | undefined,
  variable: string,
): Promise<KeyObject[]> {
  if (!path) return [];
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw unreadable(variable, path, error);
  }
  const keys: KeyObject[] = [];
  let previousEnd = 0;
  for (const match of text.matchAll(PUBLIC_PEM)) {
    const comment = text.slice(previousEnd, match.index);
    previousEnd = match.index + match[0].length;
    const expires = /expires (\S+)/.exec(comment)?.[1];
    if (expires && new Date(expires).getTime() <= Date.now()) continue;
    keys.push(createPublicKey(match[0]));
  }
  return keys;
}

export interface RotatedKey {
  retired: KeyObject;
  current: KeyObject;
}

/**
 * Rotates a signing key kept in a file: first the old key's public half is added to the file of
 * keys still accepted (with `note` above it), then the new private key replaces the old one
 * atomically. In that order, no moment exists where a signature of either key fails to verify.
 */
export async function rotateSigningKey(options: {
  privateKeyFile: string;
  acceptedKeysFile: string;
  generate: () => KeyObject;
  note: string;
}): Promise<RotatedKey> {
  let retired: KeyObject;
  try {
    retired = createPublicKey(await readFile(options.privateKeyFile, 'utf8'));
  } catch {
    throw new Error(`No signing key to rotate at ${options.privateKeyFile}`);
  }
  await mkdir(dirname(options.acceptedKeysFile), { recursive: true });
  const pem = retired.export({ type: 'spki', format: 'pem' }).toString();
  await appendFile(options.acceptedKeysFile, `# ${options.note}\n${pem}`, { mode: 0o644 });
  const next = options.generate();
  const temp = `${options.privateKeyFile}.${process.pid}.tmp`;
  await writeFile(temp, next.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  await chmod(temp, 0o600);
  await rename(temp, options.privateKeyFile);
  return { retired, current: createPublicKey(next) };
}
