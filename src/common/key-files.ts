import { createPublicKey, type KeyObject } from 'node:crypto';
import { appendFile, chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { ConfigError } from '../config/env.schema.js';
import { unreadable } from './files.js';

const PUBLIC_PEM = /-----BEGIN PUBLIC KEY-----[\s\S]*?-----END PUBLIC KEY-----/g;

/** The kind of key a file of public keys must hold: "EC P-256", and how to tell. */
export interface KeyKind {
  kind: string;
  accepts: (key: KeyObject) => boolean;
}

/**
 * The public keys in a PEM file (concatenated, comments between them allowed); [] if absent,
 * empty or comments only. A key whose comment says `expires <ISO date>` is left out once that
 * moment has passed. A file that is there but cannot be read, a PEM block that is no key, a key
 * not of `kind`, or other content without any public key (a private key put there by mistake)
 * is a ConfigError naming `variable` and the key's position (they stopped the service with a
 * stack, or the last was read as no keys and the keys meant to be accepted were not).
 */
export async function readPublicKeys(
  path: string | undefined,
  variable: string,
  kind: KeyKind,
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
  let position = 0;
  for (const match of text.matchAll(PUBLIC_PEM)) {
    position += 1;
    const comment = text.slice(previousEnd, match.index);
    previousEnd = match.index + match[0].length;
    const expires = /expires (\S+)/.exec(comment)?.[1];
    if (expires && new Date(expires).getTime() <= Date.now()) continue;
    const which = `Invalid configuration: ${variable} ${path}: public key ${position}`;
    let key: KeyObject;
    try {
      key = createPublicKey(match[0]);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? 'invalid';
      throw new ConfigError(`${which} cannot be read (${code})`);
    }
    if (!kind.accepts(key)) {
      throw new ConfigError(`${which} is not ${kind.kind}`);
    }
    keys.push(key);
  }
  if (position === 0 && text.replace(/^\s*#.*$/gm, '').trim() !== '') {
    const why = /-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(text) ? ': it holds a private key' : '';
    throw new ConfigError(
      `Invalid configuration: ${variable} ${path} holds no PEM public key${why}`,
    );
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
