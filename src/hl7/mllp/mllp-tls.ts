import type { ConnectionOptions, TlsOptions } from 'node:tls';
import { readCertificateAndKey, readCertificates } from '../../common/files.js';
import type { AppConfig } from '../../config/config.js';

/**
 * The MLLP listener's TLS options, its files read and checked: undefined when the listener is
 * off or plain. Apart from the listener so that the service can check them before it loads the
 * application (main.ts).
 */
export function listenerTls(config: AppConfig): TlsOptions | undefined {
  const tls = config.hl7Tls;
  if (!config.hl7Mllp || !tls) return undefined;
  return {
    ...readCertificateAndKey(
      { variable: 'HL7_TLS_CERT_FILE', path: tls.certFile },
      { variable: 'HL7_TLS_KEY_FILE', path: tls.keyFile },
    ),
    // HIPAA transmission security: TLS 1.0 and 1.1 are refused at the handshake.
    minVersion: 'TLSv1.2',
    ciphers: config.tlsCiphers,
    ...(tls.clientCaFile
      ? {
          ca: readCertificates('HL7_TLS_CLIENT_CA_FILE', tls.clientCaFile),
          requestCert: true,
          rejectUnauthorized: true,
        }
      : {}),
  };
}

/** The TLS options of outbound MLLP connections (CAs, client certificate), files read and checked. */
export function outboundTls(tls: AppConfig['hl7Outbound']['tls']): ConnectionOptions {
  return {
    ...(tls.ciphers ? { ciphers: tls.ciphers } : {}),
    ...(tls.caFile ? { ca: readCertificates('HL7_OUTBOUND_TLS_CA_FILE', tls.caFile) } : {}),
    ...(tls.certFile && tls.keyFile
      ? readCertificateAndKey(
          { variable: 'HL7_OUTBOUND_TLS_CERT_FILE', path: tls.certFile },
          { variable: 'HL7_OUTBOUND_TLS_KEY_FILE', path: tls.keyFile },
        )
      : {}),
  };
}
