import { connect, type Socket } from 'node:net';
import { connect as connectTls, type ConnectionOptions } from 'node:tls';
import { DEFAULT_TLS_CIPHERS } from '../../common/tls-ciphers.js';
import { decodeMessage } from '../message/hl7-header.js';
import { V2Message } from '../message/v2-message.js';
import { encodeFrame, MllpDecoder } from './mllp-decoder.js';

/** An ACK frame bigger than this is not an ACK. */
const MAX_ACK_BYTES = 1 << 20;

export interface MllpAck {
  /** MSA-1: AA, AE, AR (or CA, CE, CR). */
  code: string;
  /** ERR-3.1 (v2.5) or ERR-1.4.1 (earlier), when the ACK says why with a code (not text). */
  errorCode?: string;
  /** The ACK's text: ERR-8, else MSA-3. */
  detail?: string;
}

/**
 * A failed send: `code` is a network error code, `ACK_TIMEOUT`, or `CONNECTION_CLOSED`.
 * `written`: the message went out on the connection (the destination may have it), where a
 * failure to connect says nothing about the message.
 */
export class MllpSendError extends Error {
  override readonly name = 'MllpSendError';
  constructor(
    readonly code: string,
    readonly written = false,
  ) {
    super(`MLLP send failed: ${code}`);
  }
}

export interface MllpSenderOptions {
  host: string;
  port: number;
  /** TLS options for a TLS destination (TLS 1.2 minimum is forced). */
  tls?: ConnectionOptions;
  ackTimeoutMs: number;
}

interface Waiting {
  controlId: string;
  resolve: (ack: MllpAck) => void;
  reject: (error: MllpSendError) => void;
  timer: NodeJS.Timeout;
}

/**
 * An MLLP client that sends one message at a time and waits for its ACK, matched by MSA-2: an
 * ACK for another control id (a late answer to an attempt that timed out) is not taken for
 * this one. The connection is opened on first use and again after any failure, so a peer that
 * restarts is reached again; after a timeout the connection is dropped, since what is on it
 * can no longer be trusted.
 */
export class MllpSender {
  private socket: Socket | undefined;
  private decoder = new MllpDecoder(MAX_ACK_BYTES);
  private waiting: Waiting | undefined;

  constructor(private readonly options: MllpSenderOptions) {}

  /** Sends a message (text goes as UTF-8; bytes as they are) and resolves with its ACK. */
  async send(message: string | Buffer, controlId: string): Promise<MllpAck> {
    if (this.waiting) throw new Error('MllpSender sends one message at a time');
    const socket = await this.connection();
    return new Promise<MllpAck>((resolve, reject) => {
      // After the event loop stalled (a long GC, a busy machine), the timer fires before the
      // socket is read, though the ACK may be there: Node reads sockets after timers and before
      // setImmediate callbacks, so the timeout is decided there, with the ACK read if it came.
      const timer = setTimeout(
        () =>
          setImmediate(() => {
            if (this.waiting === waiting) this.fail(new MllpSendError('ACK_TIMEOUT'));
          }),
        this.options.ackTimeoutMs,
      );
      const waiting: Waiting = { controlId, resolve, reject, timer };
      this.waiting = waiting;
      socket.write(
        encodeFrame(typeof message === 'string' ? Buffer.from(message, 'utf8') : message),
      );
    });
  }

  close(): void {
    this.fail(new MllpSendError('CONNECTION_CLOSED'));
  }

  private async connection(): Promise<Socket> {
    if (this.socket && !this.socket.destroyed) return this.socket;
    const { host, port, tls } = this.options;
    const socket = await new Promise<Socket>((resolve, reject) => {
      const opened: Socket = tls
        ? connectTls(
            // TLS_CIPHERS comes in `tls` (outboundTls); the CLI's hl7:send has the default.
            { ciphers: DEFAULT_TLS_CIPHERS, ...tls, host, port, minVersion: 'TLSv1.2' },
            () => resolve(opened),
          )
        : connect({ host, port }, () => resolve(opened));
      opened.once('error', (error: NodeJS.ErrnoException) =>
        reject(new MllpSendError(error.code ?? 'CONNECT_FAILED')),
      );
      // A peer that never answers the connect (a dropped SYN) fails the attempt like a refusal.
      opened.setTimeout(this.options.ackTimeoutMs, () =>
        opened.destroy(Object.assign(new Error('connect timed out'), { code: 'CONNECT_TIMEOUT' })),
      );
    });
    socket.setTimeout(0);
    this.decoder = new MllpDecoder(MAX_ACK_BYTES);
    // Events of a connection already given up (its close comes later) must not touch the next.
    const current = (): boolean => this.socket === socket;
    socket.on('data', (chunk: Buffer) => {
      if (current()) this.receive(chunk);
    });
    socket.on('error', (error: NodeJS.ErrnoException) => {
      if (current()) this.fail(new MllpSendError(error.code ?? 'SOCKET_ERROR'));
    });
    socket.on('close', () => {
      if (current()) this.fail(new MllpSendError('CONNECTION_CLOSED'));
    });
    this.socket = socket;
    return socket;
  }

  private receive(chunk: Buffer): void {
    for (const event of this.decoder.push(chunk)) {
      if (event.kind !== 'frame') {
        this.fail(new MllpSendError('ACK_TOO_LARGE'));
        return;
      }
      const ack = ackOf(event.payload);
      const waiting = this.waiting;
      if (!ack || !waiting || ack.controlId !== waiting.controlId) continue;
      clearTimeout(waiting.timer);
      this.waiting = undefined;
      waiting.resolve(ack.ack);
    }
  }

  /** Ends the wait (if any) with `error` and drops the connection. */
  private fail(error: MllpSendError): void {
    const waiting = this.waiting;
    this.waiting = undefined;
    const socket = this.socket;
    this.socket = undefined;
    socket?.destroy();
    if (waiting) {
      clearTimeout(waiting.timer);
      // A wait begins once the message is written, but what the peer's TLS refused never
      // reached its application.
      waiting.reject(new MllpSendError(error.code, error.written || !TLS_ALERT.test(error.code)));
    }
  }
}

/**
 * A TLS alert from the peer (`ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED`): its TLS refused the
 * connection. In TLS 1.3 a client certificate is checked after the client's handshake is done,
 * so the message is written first; until 2026-12-07 that counted as a failed delivery, and a
 * missing one set each message of the queue aside as dead in turn, where a destination that
 * cannot be reached is tried for as long as it takes. A receiver that refuses an expired or
 * untrusted one by closing without an alert (Node's TLS does) still looks like one that
 * dropped the message: nothing here can tell the two apart.
 */
const TLS_ALERT = /^ERR_SSL_(?:SSLV3|TLSV1|TLSV13)_ALERT_/;

/**
 * A code of HL7 table 0357 (`204`). A receiver's own code cannot be told from a value it quotes
 * (`CANMRN778899`, an MRN it did not know), so it is not kept: until 2026-12-06 any short token
 * was, in the outbox row, the log and the audit trail.
 */
const ERROR_CODE = /^(?:0|10[0-4]|20[0-7])$/;

/** MSA-1, MSA-2 and the error code of an ACK frame; undefined for anything that is not one. */
function ackOf(payload: Buffer): { controlId: string; ack: MllpAck } | undefined {
  try {
    const { text, header } = decodeMessage(payload);
    const message = new V2Message(text, header.delimiters);
    const msa = message.first('MSA');
    const code = msa?.value(1);
    if (!msa || !code) return undefined;
    const err = message.first('ERR');
    const sent = err ? (err.value(3) ?? err.value(1, 4)) : undefined;
    // Stored, logged and audited with the outbox row: kept only when it is a table 0357 code.
    // Peers put text in it too, and their text echoes the field it refused (a name, a date).
    const errorCode = sent && ERROR_CODE.test(sent) ? sent : undefined;
    const detail = err?.value(8) ?? msa.value(3);
    return {
      controlId: msa.value(2) ?? '',
      ack: {
        code: code.toUpperCase(),
        ...(errorCode ? { errorCode } : {}),
        ...(detail ? { detail } : {}),
      },
    };
  } catch {
    return undefined;
  }
}
