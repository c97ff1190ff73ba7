import { readFileSync, statSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { X509Certificate } from 'node:crypto';
import { createSecureContext } from 'node:tls';
import { ConfigError } from '../config/env.schema.js';

/** Whether anything exists at `path`. */
export async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * The mode of `path` as chmod writes it (644) when its group or others have any permission on
 * it; undefined when only its owner has (or nothing is at `path`).
 */
export function openToOthers(path: string): string | undefined {
  let mode: number;
  try {
    mode = statSync(path).mode & 0o777;
  } catch {
    return undefined;
  }
  return (mode & 0o077) === 0 ? undefined : mode.toString(8).padStart(3, '0');
}

/**
 * The bytes of a file a variable names (a certificate, a key, a token), read at start-up. What
 * fails is a ConfigError naming the variable, the path and the reason (ENOENT, EACCES, EISDIR),
 * which the entry points print as one line; the file's contents never appear in it.
 */
export function readConfiguredFile(variable: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    throw unreadable(variable, path, error);
  }
}

const CERTIFICATE_PEM = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;

/**
 * The CA certificates in a file a variable names (PEM, concatenated). TLS takes a file with
 * none without a word: the service started, and then refused every sender's certificate (or
 * every destination's) at the handshake. A file with no certificate, or one OpenSSL cannot
 * read, is a ConfigError naming the variable, the path and which certificate.
 */
export function readCertificates(variable: string, path: string): Buffer {
  const file = readConfiguredFile(variable, path);
  const blocks = file.toString('latin1').match(CERTIFICATE_PEM) ?? [];
  if (blocks.length === 0) {
    throw new ConfigError(`Invalid configuration: ${variable} ${path} holds no PEM certificate`);
  }
  blocks.forEach((block, index) => {
    try {
      new X509Certificate(block);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? 'invalid';
      throw new ConfigError(
        `Invalid configuration: ${variable} ${path}: certificate ${index + 1} cannot be read (${code})`,
      );
    }
  });
  return file;
}

/** The ConfigError for a file a variable names that could not be read. */
export function unreadable(variable: string, path: string, error: unknown): ConfigError {
  return new ConfigError(
    `Invalid configuration: ${variable} ${path} cannot be read (${readFailure(error)})`,
  );
}

/** Why a read failed, as its errno code (ENOENT, EACCES, EISDIR): never the file's contents. */
export function readFailure(error: unknown): string {
  return (error as NodeJS.ErrnoException).code ?? 'unreadable';
}

/**
 * A certificate and its private key, from the files two variables name, checked as TLS will use
 * them: a file that is not PEM, or a key not the certificate's, stopped the service with
 * OpenSSL's error and a stack, naming neither variable. Only OpenSSL's code is shown
 * (ERR_OSSL_PEM_NO_START_LINE, ERR_OSSL_X509_KEY_VALUES_MISMATCH), never the files' text.
 */
export function readCertificateAndKey(
  cert: { variable: string; path: string },
  key: { variable: string; path: string },
): { cert: Buffer; key: Buffer } {
  const pair = {
    cert: readConfiguredFile(cert.variable, cert.path),
    key: readConfiguredFile(key.variable, key.path),
  };
  try {
    createSecureContext(pair);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'invalid';
    throw new ConfigError(
      `Invalid configuration: ${cert.variable} ${cert.path} and ${key.variable} ${key.path} are not a PEM certificate and its private key (${code})`,
    );
  }
  return pair;
}
