import { readCertificateAndKey } from '../files.js';
import { DEFAULT_TLS_CIPHERS } from '../tls-ciphers.js';
import type { EnvironmentVariables } from '../../config/env.schema.js';

/**
 * How long a connection may take to finish its TLS handshake. Node's default is 120 s, so a
 * client that connected and said nothing (a scanner, a half-open connection, many of them to
 * exhaust descriptors) held a socket for two minutes; a real client's handshake takes
 * milliseconds, a slow mobile link's a few seconds.
 */
export const TLS_HANDSHAKE_TIMEOUT_MS = 10_000;

/**
 * HTTPS options when a certificate is configured, its files read and checked; undefined for
 * plain HTTP. Apart from the adapter so that the service can check them before it loads the
 * application (main.ts).
 */
export function httpsOptions(
  env: EnvironmentVariables,
):
  | { cert: Buffer; key: Buffer; minVersion: 'TLSv1.2'; ciphers: string; handshakeTimeout: number }
  | undefined {
  if (!env.TLS_CERT_FILE || !env.TLS_KEY_FILE) return undefined;
  return {
    ...readCertificateAndKey(
      { variable: 'TLS_CERT_FILE', path: env.TLS_CERT_FILE },
      { variable: 'TLS_KEY_FILE', path: env.TLS_KEY_FILE },
    ),
    // HIPAA transmission security: TLS 1.0 and 1.1 are refused at the handshake.
    minVersion: 'TLSv1.2',
    ciphers: env.TLS_CIPHERS ?? DEFAULT_TLS_CIPHERS,
    handshakeTimeout: TLS_HANDSHAKE_TIMEOUT_MS,
  };
}
