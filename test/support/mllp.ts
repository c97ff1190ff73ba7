import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { connect as connectTls, type ConnectionOptions } from 'node:tls';
import { encodeFrame, MllpDecoder } from '../../src/hl7/mllp/mllp-decoder.js';
import { buildAck, type AckCode } from '../../src/hl7/message/ack.js';
import { decodeMessage } from '../../src/hl7/message/hl7-header.js';

/** A test MLLP peer: writes raw bytes, collects the ACK frames that come back. */
export class MllpTestClient {
  readonly acks: string[] = [];
  private readonly decoder = new MllpDecoder(1 << 20);
  private waiters: (() => void)[] = [];
  closed = false;

  private constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      for (const event of this.decoder.push(chunk)) {
        if (event.kind === 'frame') this.acks.push(event.payload.toString('utf8'));
      }
      this.wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
    socket.on('error', () => undefined);
  }

  /** Plain TCP, or TLS with `tls` (resolves once the handshake is done). */
  static connect(port: number, tls?: ConnectionOptions): Promise<MllpTestClient> {
    return new Promise((resolve, reject) => {
      const socket = tls
        ? connectTls({ ...tls, port, host: '127.0.0.1' }, () => resolve(new MllpTestClient(socket)))
        : connect(port, '127.0.0.1', () => resolve(new MllpTestClient(socket)));
      socket.once('error', reject);
    });
  }

  /** Frames each message and writes the whole stream in pieces of `pieceBytes`. */
  async send(messages: Buffer[], pieceBytes = Infinity): Promise<void> {
    const stream = Buffer.concat(messages.map((message) => encodeFrame(message)));
    await this.write(stream, pieceBytes);
  }

  /**
   * Writes in pieces, waiting for the socket to drain between them; stops when the peer closes
   * the connection (as the listener does on an oversized frame), when no drain would ever come.
   */
  async write(bytes: Buffer, pieceBytes = Infinity): Promise<void> {
    for (let at = 0; at < bytes.length && !this.closed; at += pieceBytes) {
      const piece = bytes.subarray(at, Math.min(bytes.length, at + pieceBytes));
      if (!this.socket.write(piece)) {
        await new Promise<void>((resolve) => {
          const done = (): void => {
            this.socket.off('drain', done);
            this.socket.off('close', done);
            resolve();
          };
          this.socket.once('drain', done);
          this.socket.once('close', done);
        });
      }
    }
  }

  /** Resolves when `count` ACKs have come, or rejects when the connection closes first. */
  async waitForAcks(count: number, timeoutMs = 30_000): Promise<string[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.acks.length < count) {
      if (this.closed) throw new Error(`Connection closed after ${this.acks.length} ACKs`);
      if (Date.now() > deadline) throw new Error(`Only ${this.acks.length} of ${count} ACKs`);
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 200);
      });
    }
    return this.acks.slice(0, count);
  }

  /** Sends the messages and gives their ACKs, in order: the ones that came after them. */
  async exchange(messages: string[]): Promise<string[]> {
    const before = this.acks.length;
    await this.send(messages.map((message) => Buffer.from(message)));
    return (await this.waitForAcks(before + messages.length)).slice(before);
  }

  async waitForClose(timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed) {
      if (Date.now() > deadline) throw new Error('The connection stayed open');
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 200);
      });
    }
  }

  close(): void {
    this.socket.destroy();
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }
}

/** MSA-1 and MSA-2 of an ACK. */
export function msaOf(ack: string): { code: string; controlId: string } {
  const msa = ack.split('\r').find((segment) => segment.startsWith('MSA'));
  const fields = (msa ?? '').split(msa?.[3] ?? '|');
  return { code: fields[1] ?? '', controlId: fields[2] ?? '' };
}

/** How the test peer answers one message: an ACK code, a stale ACK (another MSA-2), or nothing. */
export type PeerAnswer = AckCode | 'stale' | 'none';

/**
 * A receiving HL7 system for outbound tests: ACKs what it gets (as `answer` says) and records
 * the messages it answered AA, in order. It can go down (listener closed, connections cut) and
 * come back on the same port.
 */
export class MllpTestPeer {
  /** Every frame received, answered or not, in order. */
  readonly frames: string[] = [];
  /** The messages answered AA, in order. */
  readonly accepted: string[] = [];
  answer: (message: string) => PeerAnswer = () => 'AA';
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();

  private constructor(public port: number) {}

  static async start(): Promise<MllpTestPeer> {
    const peer = new MllpTestPeer(0);
    await peer.up();
    return peer;
  }

  async up(): Promise<void> {
    const server = createServer((socket) => this.serve(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', resolve);
    });
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
  }

  async down(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) =>
      this.server ? this.server.close(() => resolve()) : resolve(),
    );
    this.server = undefined;
  }

  async waitForAccepted(count: number, timeoutMs = 20_000): Promise<string[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.accepted.length < count) {
      if (Date.now() > deadline) {
        throw new Error(`Only ${this.accepted.length} of ${count} messages accepted`);
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    return this.accepted.slice(0, count);
  }

  private serve(socket: Socket): void {
    this.sockets.add(socket);
    const decoder = new MllpDecoder(1 << 20);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => undefined);
    socket.on('data', (chunk: Buffer) => {
      for (const event of decoder.push(chunk)) {
        if (event.kind !== 'frame') continue;
        const message = event.payload.toString('utf8');
        this.frames.push(message);
        const answer = this.answer(message);
        if (answer === 'none') continue;
        const { header } = decodeMessage(event.payload);
        const ack =
          answer === 'stale'
            ? buildAck({ ...header, controlId: 'SOME-EARLIER-MESSAGE' }, 'AA')
            : buildAck(header, answer);
        if (answer === 'AA') this.accepted.push(message);
        socket.write(encodeFrame(Buffer.from(ack, 'utf8')));
      }
    });
  }
}

/** MSH-10 of a message. */
export function controlIdOf(message: string): string {
  return message.split('\r')[0]!.split('|')[9] ?? '';
}
