import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

/**
 * A self-signed P-256 (or RSA 2048, for the suites that need an RSA key) certificate for `cn`
 * (valid for 127.0.0.1), as files in `dir`.
 */
export function selfSignedCertificate(
  dir: string,
  name: string,
  cn = '127.0.0.1',
  days = 2,
  keyType: 'ec' | 'rsa' = 'ec',
): { cert: string; key: string } {
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  execFileSync(
    'openssl',
    [
      ...['req', '-x509', '-nodes', '-newkey'],
      ...(keyType === 'rsa' ? ['rsa:2048'] : ['ec', '-pkeyopt', 'ec_paramgen_curve:P-256']),
      ...['-keyout', key, '-out', cert, '-days', String(days), '-subj', `/CN=${cn}`],
      ...['-addext', 'subjectAltName=IP:127.0.0.1'],
    ],
    { stdio: 'ignore' },
  );
  return { cert, key };
}
