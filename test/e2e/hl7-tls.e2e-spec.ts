import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer as createTlsServer, type ConnectionOptions } from 'node:tls';
import { DataSource } from 'typeorm';
import { MllpListener } from '../../src/hl7/mllp/mllp-listener.js';
import { MllpSendError, MllpSender } from '../../src/hl7/mllp/mllp-sender.js';
import { withEnv } from '../support/env.js';
import { BUILT, childEnv, runNode } from '../support/process.js';
import { issuedCertificate, selfSignedCertificate } from '../support/certificates.js';
import { msaOf, MllpTestClient } from '../support/mllp.js';
import { createTestApp, type TestApp } from '../support/test-app.js';

const MESSAGE = Buffer.from(
  'MSH|^~\\&|LAB|HOSP|CV|CV|20240101||ADT^A28|TLS-1|P|2.5\rPID|1||T-1^^^HOSP&2.16.5&ISO^MR||Tls^Test',
);

describe('HL7 MLLP over TLS with client certificates', () => {
  let dir: string;
  let testApp: TestApp;
  let restoreEnv: () => void;
  let port: number;
  let server: { cert: string; key: string };
  let sender: { cert: string; key: string };
  let stranger: { cert: string; key: string };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'carevault-hl7-tls-'));
    // RSA: the suites refused include static RSA, which an EC key cannot offer.
    server = selfSignedCertificate(dir, 'server', '127.0.0.1', 2, 'rsa');
    sender = selfSignedCertificate(dir, 'sender', 'lab-feed');
    stranger = selfSignedCertificate(dir, 'stranger', 'unknown-feed');
    restoreEnv = withEnv({
      HL7_TLS_CERT_FILE: server.cert,
      HL7_TLS_KEY_FILE: server.key,
      // The sender's self-signed certificate is the one trusted issuer.
      HL7_TLS_CLIENT_CA_FILE: sender.cert,
      // Also the time a TLS handshake may take.
      HL7_MLLP_FRAME_TIMEOUT_MS: '1000',
    });
    testApp = await createTestApp();
    port = testApp.app.get(MllpListener).address()!.port;
  });

  afterAll(async () => {
    await testApp.close();
    restoreEnv();
    await rm(dir, { recursive: true, force: true });
  });

  const tlsAs = (identity?: { cert: string; key: string }) => ({
    ca: readFileSync(server.cert),
    ...(identity ? { cert: readFileSync(identity.cert), key: readFileSync(identity.key) } : {}),
  });

  it('acknowledges a sender with a trusted certificate', async () => {
    const client = await MllpTestClient.connect(port, tlsAs(sender));
    await client.send([MESSAGE]);
    expect(msaOf((await client.waitForAcks(1))[0]!)).toEqual({ code: 'AA', controlId: 'TLS-1' });
    client.close();
    // Who sent it is the certificate the handshake checked, not MSH-3, which any sender writes:
    // until 2026-12-06 the audit row named only MSH-3 and the address.
    const fingerprint = new X509Certificate(readFileSync(sender.cert)).fingerprint256;
    const [row] = await testApp.app.get(DataSource).query<Record<string, string>[]>(
      `SELECT m.peer_certificate, a.actor_user_id, a.actor_name FROM hl7_message m
         JOIN audit_event a ON a.source = 'hl7' AND a.request_id = m.id::text
        WHERE m.control_id = 'TLS-1'`,
    );
    expect(row).toEqual({
      peer_certificate: `CN=lab-feed; sha256:${fingerprint}`,
      actor_user_id: `x509:sha256:${fingerprint}`,
      actor_name: 'hl7:LAB (CN=lab-feed)',
    });
  });

  it.each([
    ['no certificate', undefined],
    ['an untrusted certificate', 'stranger'],
  ])('refuses a sender with %s', async (_, who) => {
    const identity = who === 'stranger' ? stranger : undefined;
    // TLS 1.3 reports a refused client certificate after the handshake, as a closed socket.
    const client = await MllpTestClient.connect(port, tlsAs(identity)).catch(() => undefined);
    if (client) {
      await client.send([MESSAGE]);
      await client.waitForClose();
      expect(client.acks).toHaveLength(0);
    }
  });

  it('the outbound sender speaks TLS with a client certificate, and fails without one', async () => {
    const send = (tls: ConnectionOptions) =>
      new MllpSender({ host: '127.0.0.1', port, ackTimeoutMs: 5000, tls }).send(MESSAGE, 'TLS-1');
    await expect(send(tlsAs(sender))).resolves.toMatchObject({ code: 'AA' });
    await expect(send(tlsAs())).rejects.toBeInstanceOf(MllpSendError);
    // Refused by the receiver's TLS with an alert (after the handshake, in TLS 1.3), the message
    // never reached its application: a failure to connect, which does not count toward setting
    // it aside as dead. (Node's own check of an untrusted one closes without an alert.)
    await expect(send(tlsAs())).rejects.toMatchObject({
      code: 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED',
      written: false,
    });
    // The server's certificate is checked: without its CA the connection is refused.
    await expect(
      send({ cert: readFileSync(sender.cert), key: readFileSync(sender.key) }),
    ).rejects.toMatchObject({ code: 'DEPTH_ZERO_SELF_SIGNED_CERT' });
  });

  it.each([
    ['expired', 'issued by the trusted issuer'],
    ['untrusted', 'self-signed'],
  ])(
    'the outbound sender cannot tell a client certificate refused as %s (%s) from a lost message',
    async (kind) => {
      const identity =
        kind === 'expired' ? issuedCertificate(dir, 'expired', sender, 'lab-feed-2', -1) : stranger;
      const error: unknown = await new MllpSender({
        host: '127.0.0.1',
        port,
        ackTimeoutMs: 5000,
        tls: tlsAs(identity),
      })
        .send(MESSAGE, 'TLS-1')
        .catch((refused: unknown) => refused);
      // Node's TLS (this listener's, any Node-based receiver's) checks the certificate after
      // the TLS 1.3 handshake and closes without an alert: to the sender, the message was
      // written and the connection closed unanswered, as a receiver that died on it would do,
      // so the attempt counts toward setting the message aside as dead. Only a missing
      // certificate is refused with an alert (above), and retried for as long as it takes.
      expect(error).toBeInstanceOf(MllpSendError);
      expect(error).toMatchObject({ written: true });
      expect((error as MllpSendError).code).not.toMatch(/ALERT/);
    },
  );

  // Until 2026-12-06 TLS 1.2 took Node's default suites, static RSA (no forward secrecy)
  // among them, inbound and outbound: NIST SP 800-52r2 keeps ECDHE with AES-GCM.
  it('with TLS 1.2, takes ECDHE with AES-GCM only, inbound and outbound', async () => {
    const tls12 = (ciphers: string): ConnectionOptions => ({
      ...tlsAs(sender),
      maxVersion: 'TLSv1.2',
      ciphers,
    });
    const client = await MllpTestClient.connect(port, tls12('ECDHE-RSA-AES128-GCM-SHA256'));
    client.close();
    await expect(MllpTestClient.connect(port, tls12('AES128-GCM-SHA256'))).rejects.toThrow(
      /handshake failure/,
    );
    // A destination offering static RSA only is refused by the outbound sender.
    const legacy = createTlsServer({
      cert: readFileSync(server.cert),
      key: readFileSync(server.key),
      maxVersion: 'TLSv1.2',
      ciphers: 'AES128-GCM-SHA256',
    });
    legacy.on('tlsClientError', () => undefined);
    await new Promise<void>((resolve) => legacy.listen(0, '127.0.0.1', resolve));
    try {
      const sending = new MllpSender({
        host: '127.0.0.1',
        port: (legacy.address() as AddressInfo).port,
        ackTimeoutMs: 5000,
        tls: { ca: readFileSync(server.cert) },
      }).send(MESSAGE, 'TLS-1');
      await expect(sending).rejects.toMatchObject({
        code: 'ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE',
      });
    } finally {
      legacy.close();
    }
  });

  // Until 2026-12-06 hl7:send --tls took no CA nor client certificate: it could not reach a
  // listener with a private CA, nor one requiring client certificates.
  it('hl7:send reaches the listener with --ca, --cert and --key', async () => {
    const file = join(dir, 'cli.hl7');
    await writeFile(file, MESSAGE.toString('latin1').replace('TLS-1', 'TLS-CLI-1'));
    const send = (...identity: string[]) =>
      runNode(
        BUILT.cli,
        ['hl7:send', file, '--port', String(port), '--ca', server.cert, ...identity],
        childEnv({
          DATABASE_URL: process.env['DATABASE_URL']!,
          PHI_MASTER_KEY: process.env['PHI_MASTER_KEY']!,
          LOG_LEVEL: 'silent',
        }),
      );
    const cli = await send('--cert', sender.cert, '--key', sender.key);
    expect(cli.stdout.split('\n')[0]).toBe('1 AA TLS-CLI-1');
    expect(cli.code).toBe(0);
    const refused = await send('--cert', sender.cert);
    expect(refused.stderr).toContain('--cert and --key go together');
    expect(refused.code).toBe(1);
  });

  it('refuses plain TCP', async () => {
    const client = await MllpTestClient.connect(port);
    await client.send([MESSAGE]);
    await client.waitForClose();
    expect(client.acks).toHaveLength(0);
  });

  /** A TCP connection that never starts its handshake, and resolves when the listener closes it. */
  const silentPeer = async (): Promise<{ socket: Socket; closed: Promise<number> }> => {
    const socket = connect(port, '127.0.0.1');
    socket.on('error', () => undefined);
    await new Promise((resolve) => socket.once('connect', resolve));
    const opened = Date.now();
    const closed = new Promise<number>((resolve) =>
      socket.once('close', () => resolve(Date.now() - opened)),
    );
    return { socket, closed };
  };

  const within = <T>(ms: number, promise: Promise<T>): Promise<T | 'still waiting'> =>
    Promise.race([
      promise,
      new Promise<'still waiting'>((resolve) => setTimeout(() => resolve('still waiting'), ms)),
    ]);

  // Until 2026-12-06 the listener logged the handshake timeout and kept the socket: a peer that
  // connected and said nothing (a scanner, a dropped NAT entry) held one of
  // HL7_MLLP_MAX_CONNECTIONS forever, and a SIGTERM never ended while it stayed.
  it('closes a connection whose TLS handshake does not end within the frame timeout', async () => {
    const { socket, closed } = await silentPeer();
    try {
      await expect(within(4000, closed)).resolves.toEqual(expect.any(Number));
    } finally {
      socket.destroy();
    }
  });

  // Last: it stops the listener.
  it('stops without waiting for a connection still in its handshake', async () => {
    const { socket, closed } = await silentPeer();
    try {
      const listener = testApp.app.get(MllpListener);
      await expect(within(800, listener.beforeApplicationShutdown())).resolves.toBeUndefined();
      await expect(within(100, closed)).resolves.toEqual(expect.any(Number));
    } finally {
      socket.destroy();
    }
  });
});
