import {
  Injectable,
  Logger,
  type BeforeApplicationShutdown,
  type OnApplicationBootstrap,
} from '@nestjs/common';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer, TLSSocket } from 'node:tls';
import { listenError } from '../../common/listen-error.js';
import { AppConfig } from '../../config/config.js';
import { Hl7InboundService } from '../inbound/hl7-inbound.service.js';
import { encodeFrame, MllpDecoder } from './mllp-decoder.js';
import { listenerTls } from './mllp-tls.js';

/** Messages a connection may have waiting for their ACK before reading from it pauses. */
const MAX_PIPELINED = 64;

/**
 * The MLLP listener: one ACK per message, in order, on the connection it came on. Messages of
 * one connection are handled one after another (their order is the sender's); connections run
 * side by side. A message whose storage fails gets no ACK and its connection is closed, so the
 * sender resends it rather than wait.
 */
@Injectable()
export class MllpListener implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger('Mllp');
  private server: Server | undefined;
  private readonly connections = new Set<Socket>();
  /** The TCP sockets under them, and those of connections still in their TLS handshake. */
  private readonly sockets = new Set<Socket>();
  /** Each connection's queue of messages, until it settles (its socket may be closed already). */
  private readonly queues = new Map<Socket, Promise<void>>();
  /** Set at shutdown: messages not yet begun are not stored (their senders resend them). */
  private stopping = false;
  /** Bytes held for all connections' unfinished and unprocessed frames (HL7_MLLP_BUFFER_BYTES). */
  private buffered = 0;

  constructor(
    private readonly config: AppConfig,
    private readonly inbound: Hl7InboundService,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    const options = this.config.hl7Mllp;
    if (!options) return;
    const tls = this.config.hl7Tls;
    const tlsOptions = listenerTls(this.config);
    // A handshake must end within the frame timeout. Until 2026-12-06 it had Node's 120 s, and
    // its timeout was logged here without closing the socket: a peer that connected and said
    // nothing (a scanner, a NAT entry dropped mid-handshake) held a connection slot forever, and
    // the listener's close, hence a SIGTERM, waited for it.
    // Half-open: a sender that half-closes after its last frame (`nc -N`, a batch script)
    // still reads its ACKs; until 2026-12-06 the first was lost and the rest never processed.
    const server = tlsOptions
      ? createTlsServer(
          { ...tlsOptions, handshakeTimeout: options.frameTimeoutMs, allowHalfOpen: true },
          (socket) => this.serve(socket),
        )
      : createServer({ allowHalfOpen: true }, (socket) => this.serve(socket));
    server.on('tlsClientError', (error: Error & { code?: string }, socket: Socket) => {
      this.logger.warn(
        { peer: socket.remoteAddress, code: error.code },
        'MLLP TLS handshake refused',
      );
      socket.destroy();
    });
    // Every TCP connection, its handshake done or not, so that shutdown can close them all.
    server.on('connection', (raw: Socket) => {
      this.sockets.add(raw);
      raw.once('close', () => this.sockets.delete(raw));
    });
    // Past the cap Node closes a new connection as it opens; the sender retries later.
    server.maxConnections = options.maxConnections;
    server.on('drop', (peer?: { remoteAddress?: string }) => {
      this.logger.warn(
        { peer: peer?.remoteAddress ?? null, limit: options.maxConnections },
        'MLLP connection refused: too many open',
      );
    });
    await new Promise<void>((resolve, reject) => {
      const refused = (error: Error): void =>
        reject(
          listenError(error, {
            host: { name: 'HL7_MLLP_HOST', value: options.host },
            port: { name: 'HL7_MLLP_PORT', value: options.port },
          }),
        );
      server.once('error', refused);
      server.listen(options.port, options.host, () => {
        server.off('error', refused);
        resolve();
      });
    });
    this.server = server;
    const { address, port } = this.address()!;
    const mode = tls ? (tls.clientCaFile ? ' (TLS, client certificates required)' : ' (TLS)') : '';
    this.logger.log(`MLLP listener on ${address}:${port}${mode}`);
  }

  /** Where it listens (port 0 in the configuration means the system chose). */
  address(): AddressInfo | undefined {
    const address = this.server?.address();
    return address && typeof address === 'object' ? address : undefined;
  }

  /**
   * Before the pool closes (application shutdown): no new connections, nothing more read, and
   * the message each connection is processing finishes and gets its ACK. Until 2026-12-06 the
   * connections were cut and the pool closed under that message, which stayed `received`, with
   * no ACK, until its sender resent it. Those waiting behind it are not stored: their senders
   * resend them. The wait is bounded by SHUTDOWN_TIMEOUT_SECONDS (a database that hangs).
   */
  async beforeApplicationShutdown(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    this.stopping = true;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const socket of this.connections) socket.pause();
    // A connection still in its TLS handshake has sent no message: nothing to wait for. (A TLS
    // connection's socket is not the TCP socket under it: they share the peer's address.)
    const served = new Set([...this.connections].map(peerKey));
    for (const socket of this.sockets) if (!served.has(peerKey(socket))) socket.destroy();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(this.queues.values()),
      new Promise((resolve) => {
        timer = setTimeout(resolve, this.config.shutdownTimeoutSeconds * 1000);
      }),
    ]);
    clearTimeout(timer);
    // The ACKs written are sent before each connection closes; a peer not reading them gets 1 s.
    for (const socket of this.connections) socket.end(() => socket.destroy());
    const cut = setTimeout(() => {
      for (const socket of [...this.connections, ...this.sockets]) socket.destroy();
    }, 1000);
    await closed;
    clearTimeout(cut);
  }

  private serve(socket: Socket): void {
    const options = this.config.hl7Mllp!;
    this.connections.add(socket);
    socket.setNoDelay(true);
    socket.setTimeout(options.idleSeconds * 1000, () => socket.destroy());
    socket.on('error', () => undefined);
    socket.on('close', () => this.connections.delete(socket));
    const decoder = new MllpDecoder(options.maxFrameBytes);
    const peer = socket.remoteAddress ?? null;
    const peerCertificate = certificateOf(socket);
    let queue = Promise.resolve();
    let waiting = 0;
    // This connection's share of `buffered`: its frame being read, and frames waiting their turn.
    let reading = 0;
    let queued = 0;
    socket.on('close', () => {
      this.buffered -= reading + queued;
      reading = queued = 0;
    });
    // A frame begun must end within frameTimeoutMs: bytes trickled now and then keep the idle
    // timeout from firing, and would hold a half-sent frame (and its buffer) forever. The
    // deadline runs from the frame's start block to the end of a frame: a start block that cuts
    // a frame short does not restart it.
    let deadline: NodeJS.Timeout | undefined;
    const expire = (): void => {
      // While reading is paused (the sender's earlier messages wait on ours), the frame's bytes
      // wait in the socket: not the sender's delay.
      if (socket.isPaused()) {
        deadline = setTimeout(expire, options.frameTimeoutMs);
        return;
      }
      this.logger.warn(
        { peer, limitMs: options.frameTimeoutMs },
        'MLLP frame not completed in time: connection closed',
      );
      socket.destroy();
    };
    socket.on('close', () => clearTimeout(deadline));
    // The sender has sent all it will: its messages are answered, then the connection ends.
    socket.on('end', () => {
      void queue.finally(() => {
        if (!socket.destroyed) socket.end();
      });
    });
    socket.on('data', (chunk: Buffer) => {
      const events = decoder.push(chunk);
      const frames = events.reduce(
        (bytes, event) => bytes + (event.kind === 'frame' ? event.payload.length : 0),
        0,
      );
      this.buffered += decoder.held - reading + frames;
      reading = decoder.held;
      queued += frames;
      if (this.buffered > options.bufferBytes) {
        // Nothing of what it sent since its last ACK is kept: the sender resends it.
        this.logger.warn(
          { peer, limit: options.bufferBytes },
          'MLLP frames held by all connections over the limit: connection closed',
        );
        socket.destroy();
        return;
      }
      if (events.some((event) => event.kind === 'frame') || !decoder.inFrame) {
        clearTimeout(deadline);
        deadline = undefined;
      }
      if (decoder.inFrame && !deadline && !socket.destroyed) {
        deadline = setTimeout(expire, options.frameTimeoutMs);
      }
      for (const event of events) {
        if (event.kind === 'oversized') {
          this.logger.warn(
            { peer, limit: options.maxFrameBytes },
            'MLLP frame over the size limit',
          );
          socket.destroy();
          return;
        }
        if (event.kind === 'truncated') {
          this.logger.warn({ peer }, 'MLLP frame without end block dropped');
          continue;
        }
        if (++waiting >= MAX_PIPELINED) socket.pause();
        const size = event.payload.length;
        queue = queue
          .then(async () => {
            if (socket.destroyed || this.stopping) return;
            const ack = await this.inbound
              .receive(event.payload, { channel: 'mllp', peer, peerCertificate })
              .finally(() => {
                if (socket.destroyed) return;
                queued -= size;
                this.buffered -= size;
              });
            socket.write(encodeFrame(ack));
          })
          .catch((error: unknown) => {
            this.logger.error(
              {
                peer,
                err: { type: (error as Error).name, code: (error as { code?: unknown }).code },
              },
              'HL7 message not stored or not processed: no ACK, connection closed',
            );
            socket.destroy();
          })
          .finally(() => {
            if (--waiting < MAX_PIPELINED / 2 && socket.isPaused() && !this.stopping) {
              socket.resume();
            }
          });
        const tail = queue;
        this.queues.set(socket, tail);
        void tail.finally(() => {
          if (this.queues.get(socket) === tail) this.queues.delete(socket);
        });
      }
    });
  }
}

function peerKey(socket: Socket): string {
  return `${socket.remoteAddress}:${socket.remotePort}`;
}

/** A mutual-TLS sender's certificate, `CN=…; sha256:…`; null on plain TCP or without one. */
function certificateOf(socket: Socket): string | null {
  if (!(socket instanceof TLSSocket)) return null;
  const certificate = socket.getPeerCertificate();
  if (!certificate?.fingerprint256) return null;
  const cn = certificate.subject?.CN;
  return `CN=${Array.isArray(cn) ? cn.join('+') : (cn ?? '')}; sha256:${certificate.fingerprint256}`;
}
