import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isLoopback } from '../common/http/loopback.js';
import { DEFAULT_TLS_CIPHERS } from '../common/tls-ciphers.js';
import type { AppConfig } from '../config/config.js';
import { fail, pass, warn, type Outcome } from './compliance-report.js';
import type { DatabaseTransport } from './compliance.repository.js';

/** A certificate expiring sooner warns: renew it, and restart (TLS files are read at start). */
const CERTIFICATE_WARN_DAYS = 30;
const DAY_MS = 86_400_000;

/**
 * 164.312(e)(1): every link that carries ePHI (HTTPS, MLLP in and out, PostgreSQL, subscription
 * hooks) is TLS 1.2+ or never leaves the host, with the served certificates' expiry and the
 * cipher suites.
 */
export function transmissionSecurity(
  config: AppConfig,
  database: DatabaseTransport,
  now: number,
): Outcome {
  const problems: string[] = [];
  const notes: string[] = [];
  // ePHI crosses this link in every query; a Unix socket or loopback never leaves the host.
  const local = database.host.startsWith('/') || isLoopback(database.host);
  if (local) {
    notes.push(`PostgreSQL on ${database.host.startsWith('/') ? 'a Unix socket' : 'loopback'}`);
  } else if (!database.tlsVersion) {
    problems.push(`the connection to PostgreSQL on ${database.host} is not TLS`);
  } else if (!database.verifiesServer) {
    problems.push(
      `the connection to PostgreSQL on ${database.host} is ${database.tlsVersion} without verifying the server's certificate (sslmode=no-verify, prefer or libpq-compatible require): use sslmode=verify-full`,
    );
  } else {
    notes.push(`PostgreSQL on ${database.host} over ${database.tlsVersion}, server verified`);
  }
  const warnings: string[] = [];
  const record = (outcome: Outcome): void => {
    ({ pass: notes, warn: warnings, fail: problems })[outcome.status].push(outcome.evidence);
  };
  const certificates = (name: string, label: string, file: string): void =>
    record(certificateExpiry(name, label, file, now));
  const tls = config.tls;
  if (tls) {
    certificates('TLS_CERT_FILE', 'HTTPS', tls.certFile);
  } else if (config.trustedProxies.length > 0) {
    notes.push(`HTTPS terminated by the proxy (${config.trustedProxies.join(', ')})`);
  } else {
    problems.push(`plain HTTP on ${config.host}:${config.port} without a TLS proxy`);
  }
  const mllp = config.hl7Mllp;
  const mllpTls = config.hl7Tls;
  if (mllp && mllpTls) {
    certificates('HL7_TLS_CERT_FILE', 'MLLP', mllpTls.certFile);
  }
  if (mllp && !mllpTls && !isLoopback(mllp.host)) {
    problems.push(`MLLP listener on ${mllp.host} without TLS`);
  } else {
    notes.push(mllp ? `MLLP ${config.hl7Tls ? 'over TLS' : 'on loopback only'}` : 'MLLP off');
  }
  const plain = config.hl7Outbound.destinations.filter(
    (destination) => !destination.tls && !isLoopback(destination.host),
  );
  if (plain.length > 0) {
    problems.push(`HL7 destinations without TLS: ${plain.map((d) => d.name).join(', ')}`);
  }
  // Notifications carry no record, but their headers carry the receiver's credentials.
  const plainHooks = config.subscriptions.endpoints.filter((endpoint) => {
    const url = new URL(endpoint);
    return url.protocol !== 'https:' && !isLoopback(url.hostname);
  });
  if (plainHooks.length > 0) {
    problems.push(`Subscription endpoints without TLS: ${plainHooks.join(', ')}`);
  }
  record(suites(config.tlsCiphers));
  return problems.length > 0
    ? fail([...problems, ...warnings].join('; '))
    : warnings.length > 0
      ? warn([...warnings, ...notes].join('; '))
      : pass(notes.join('; '));
}

/**
 * The suites of every TLS endpoint: NIST SP 800-52r2's by default. A TLS_CIPHERS that names
 * others (Node's DEFAULT, CHACHA20, static RSA) is shown for a reviewer to judge.
 */
function suites(chosen: string): Outcome {
  if (chosen === DEFAULT_TLS_CIPHERS) {
    return pass('TLS suites: NIST SP 800-52r2 (ECDHE or TLS 1.3, AES-GCM)');
  }
  const suites = chosen.split(':');
  // Without a TLS 1.3 name the list leaves TLS 1.3 to OpenSSL's own suites, CHACHA20 among them.
  if (!suites.some((suite) => suite.startsWith('TLS_'))) {
    return warn(
      `TLS_CIPHERS names no TLS 1.3 suite, so TLS 1.3 takes OpenSSL's defaults (CHACHA20 among them): ${chosen}`,
    );
  }
  const nist = new Set(DEFAULT_TLS_CIPHERS.split(':'));
  return suites.every((suite) => nist.has(suite))
    ? pass(`TLS suites: ${chosen}, of NIST SP 800-52r2's`)
    : warn(`TLS_CIPHERS names suites beyond NIST SP 800-52r2's: ${chosen}`);
}

/**
 * A served certificate's validity, by its subject and end date: expired fails, expiring within
 * CERTIFICATE_WARN_DAYS warns. The service goes on serving one that expires while it runs.
 */
function certificateExpiry(name: string, label: string, file: string, now: number): Outcome {
  const certificate = readCertificate(file);
  if (!certificate) {
    return fail(`${name} ${file} is not a readable certificate`);
  }
  const end = new Date(certificate.validTo);
  const subject = certificate.subject.split('\n').join(', ');
  const left = end.getTime() - now;
  const text = `the ${label} certificate (${name}, ${subject})`;
  if (left <= 0) {
    return fail(`${text} expired on ${end.toISOString()}`);
  }
  return left < CERTIFICATE_WARN_DAYS * DAY_MS
    ? warn(
        `${text} expires on ${end.toISOString()}, in ${Math.ceil(left / DAY_MS)} days: renew it and restart`,
      )
    : pass(`${label} with TLS 1.2+, certificate valid until ${end.toISOString()}`);
}

function readCertificate(file: string): X509Certificate | undefined {
  try {
    return new X509Certificate(readFileSync(file));
  } catch {
    return undefined;
  }
}
