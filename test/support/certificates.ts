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

/**
 * A P-256 certificate for `cn` issued by `issuer` (a self-signed one above, which openssl makes
 * a CA), valid for `days`: `-1` gives one that expired a day before it was made (OpenSSL 3.0
 * has no -not_after). `cn` must not be the issuer's, or the certificate reads as self-signed.
 */
export function issuedCertificate(
  dir: string,
  name: string,
  issuer: { cert: string; key: string },
  cn: string,
  days: number,
): { cert: string; key: string } {
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  const request = join(dir, `${name}.csr`);
  execFileSync(
    'openssl',
    [
      ...['req', '-new', '-nodes', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'],
      ...['-keyout', key, '-out', request, '-subj', `/CN=${cn}`],
    ],
    { stdio: 'ignore' },
  );
  execFileSync(
    'openssl',
    [
      ...['x509', '-req', '-in', request, '-CA', issuer.cert, '-CAkey', issuer.key],
      ...['-out', cert, '-days', String(days)],
    ],
    { stdio: 'ignore' },
  );
  return { cert, key };
}
