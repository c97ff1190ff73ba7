import { createServer } from 'node:net';
import {
  idTokenSigningKeyFile,
  jwtSigningKeyFile,
  readJwtVerificationKeys,
} from './auth/signing-keys.js';
import { auditSigningKeyFile, readAuditTrustedKeys } from './audit/audit-signer.js';
import { readConfiguredFile } from './common/files.js';
import { listenError } from './common/listen-error.js';
import { httpsOptions } from './common/http/https-options.js';
import { readPrivateKey } from './common/private-key-file.js';
import { appConfigOf } from './config/config.js';
import type { EnvironmentVariables } from './config/env.schema.js';
import { KeyStore, keySettingsOf } from './crypto/key-store.js';
import { listenerTls, outboundTls } from './hl7/mllp/mllp-tls.js';
import { MetricsToken } from './metrics/metrics-token.js';

/**
 * Reads and checks the key, certificate and token files the environment names, with the
 * functions the providers that use them call, so that a mistyped path or a wrong file stops the
 * service in a fraction of a second instead of after the application's modules have loaded
 * (seconds: the FHIR definitions). The providers still check them: the CLI and the tests build
 * the application without this. Only what needs no database, no HSM and writes nothing: a key
 * generated under DATA_DIR when none is configured is left to the providers, and so are wrapped
 * PHI keys (KEY_CUSTODY). Throws the providers' ConfigError or KeyConfigError.
 */
export async function checkConfiguredFiles(env: EnvironmentVariables): Promise<void> {
  const config = appConfigOf(env);
  // The providers read the same files next, and warn of their modes then.
  const quiet = { quiet: true };
  if (env.DATABASE_URL) checkDatabaseTlsFiles(env.DATABASE_URL);
  httpsOptions(env);
  if (config.phiKeyFile && !config.keyCustody) {
    await new KeyStore({ ...keySettingsOf(config, undefined), quiet: true }).load();
  }
  if (config.jwtSigningKeyFile) await readPrivateKey(jwtSigningKeyFile(config), quiet);
  if (config.idTokenSigningKeyFile) await readPrivateKey(idTokenSigningKeyFile(config), quiet);
  await readJwtVerificationKeys(config.jwtVerificationKeysFile);
  if (config.auditSigningKeyFile) await readPrivateKey(auditSigningKeyFile(config), quiet);
  await readAuditTrustedKeys(config.auditTrustedKeysFile);
  new MetricsToken(config.metricsTokenFile);
  listenerTls(config);
  outboundTls(config.hl7Outbound.tls);
  await checkAddress({ name: 'HOST', value: config.host }, 'PORT');
  const mllp = config.hl7Mllp;
  if (mllp) await checkAddress({ name: 'HL7_MLLP_HOST', value: mllp.host }, 'HL7_MLLP_PORT');
}

/**
 * Whether a listener can bind to the address (on a free port): one that does not resolve or
 * is not this machine's stops the service here, as the listen would after the application has
 * loaded, reached the database and run its migrations (4 to 7 s until 2026-12-06).
 */
async function checkAddress(host: { name: string; value: string }, port: string): Promise<void> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host.value, () => server.close(() => resolve()));
  }).catch((error: Error) => {
    throw listenError(error, { host, port: { name: port, value: 0 } });
  });
}

/**
 * The files DATABASE_URL's sslrootcert, sslcert and sslkey name, which pg reads at each
 * connection attempt: a missing one stopped the service after its ~40 s of connection retries,
 * with ENOENT and a stack. The error names the parameter and the path, never the URL (its
 * password).
 */
function checkDatabaseTlsFiles(url: string): void {
  let params: URLSearchParams;
  try {
    params = new URL(url).searchParams;
  } catch {
    return; // not a URL pg-connection-string reads this way: left to it
  }
  for (const name of ['sslrootcert', 'sslcert', 'sslkey']) {
    const path = params.get(name);
    if (path) readConfiguredFile(`DATABASE_URL's ${name}`, path);
  }
}
