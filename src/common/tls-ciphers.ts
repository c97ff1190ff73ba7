import { createSecureContext } from 'node:tls';

/**
 * The cipher suites of every TLS endpoint (HTTPS, the MLLP listener, outbound MLLP) unless
 * TLS_CIPHERS names others: those NIST SP 800-52r2 recommends, with forward secrecy. TLS 1.3:
 * AES-GCM (CHACHA20-POLY1305, which Node also enables, is not in 800-52r2). TLS 1.2: ECDHE with
 * AES-GCM; Node's default also took static RSA (no forward secrecy), ARIA, CHACHA20 and AES-CCM.
 * DHE is left out: the server sets no DH parameters, so it never chose DHE, and as a client it
 * would accept whatever group the peer sends.
 */
export const DEFAULT_TLS_CIPHERS = [
  'TLS_AES_256_GCM_SHA384',
  'TLS_AES_128_GCM_SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
].join(':');

/** Whether Node takes this OpenSSL cipher string (one suite it knows at least). */
export function isCipherList(value: unknown): boolean {
  if (typeof value !== 'string' || value.trim() === '') return false;
  try {
    createSecureContext({ ciphers: value });
    return true;
  } catch {
    return false;
  }
}
