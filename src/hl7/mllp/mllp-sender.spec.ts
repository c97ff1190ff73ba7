import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { MllpSendError, MllpSender } from './mllp-sender.js';

describe('MllpSender', () => {
  let server: Server;
  const sockets: Socket[] = [];

  beforeAll(async () => {
    // Accepts connections and never answers: a TLS handshake with it never completes.
    server = createServer((socket) => sockets.push(socket));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  });

  afterAll(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => server.close(resolve));
  });

  it('fails a connection that never completes within the timeout, rather than waiting forever', async () => {
    const sender = new MllpSender({
      host: '127.0.0.1',
      port: (server.address() as AddressInfo).port,
      ackTimeoutMs: 200,
      tls: {},
    });
    const failure = sender.send('MSH|^~\\&|A|B|C|D|20240101||ADT^A08|1|P|2.5', '1');
    await expect(failure).rejects.toBeInstanceOf(MllpSendError);
    await expect(failure).rejects.toMatchObject({ code: 'CONNECT_TIMEOUT' });
  });

  it('fails a send whose ACK does not come within the timeout', async () => {
    const sender = new MllpSender({
      host: '127.0.0.1',
      port: (server.address() as AddressInfo).port,
      ackTimeoutMs: 200,
    });
    await expect(
      sender.send('MSH|^~\\&|A|B|C|D|20240101||ADT^A08|2|P|2.5', '2'),
    ).rejects.toMatchObject({ code: 'ACK_TIMEOUT' });
  });

  it('keeps an error code only when it is one of table 0357: peers echo values (PHI) in ERR', async () => {
    const naks = [
      'MSA|AE|5\rERR||PID^1^5|Patient DOE JOHN 19800101 unknown^^HL70357|E',
      'MSA|AE|6\rERR||PID^1^5|204^Unknown key identifier^HL70357|E||||DOE JOHN not found',
      'MSA|AR|7|DOE JOHN\rERR|PID^1^5^103&Table value not found&HL70357',
      // A receiver's own code, or what looks like one: an MRN it did not know.
      'MSA|AE|8\rERR|||CANMRN778899^Not on file^L|E',
    ];
    const peer = createServer((socket) => {
      sockets.push(socket);
      socket.on('data', (chunk) => {
        const id = chunk.toString('latin1').split('\r')[0]!.split('|')[9]!;
        const nak = naks[Number(id) - 5]!;
        socket.write(`\x0bMSH|^~\\&|B|B|A|A|20240101||ACK|A${id}|P|2.5\r${nak}\x1c\r`);
      });
    });
    await new Promise<void>((resolve) => peer.listen(0, '127.0.0.1', resolve));
    const sender = new MllpSender({
      host: '127.0.0.1',
      port: (peer.address() as AddressInfo).port,
      ackTimeoutMs: 2000,
    });
    try {
      const codes: (string | undefined)[] = [];
      for (const id of ['5', '6', '7', '8']) {
        codes.push((await sender.send(`MSH|^~\\&|A|B|C|D|1||ADT^A08|${id}|P|2.5`, id)).errorCode);
      }
      expect(codes).toEqual([undefined, '204', '103', undefined]);
    } finally {
      sender.close();
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => peer.close(resolve));
    }
  });

  it('takes an ACK that came while the event loop stalled past the timeout', async () => {
    // A receiver in a process of its own, which answers (30 ms on) while this one is blocked.
    const peer = spawn(process.execPath, [
      '-e',
      `const net = require('node:net');
       net.createServer((socket) => socket.on('data', (chunk) => {
         const id = chunk.toString('latin1').split('\\r')[0].split('|')[9];
         const ack = '\\x0bMSH|^~\\\\&|B|B|A|A|20240101||ACK|A' + id + '|P|2.5\\rMSA|AA|' + id + '\\x1c\\r';
         setTimeout(() => socket.write(ack), 30);
       })).listen(0, '127.0.0.1', function () { process.stdout.write(String(this.address().port)); });`,
    ]);
    try {
      const [port] = (await once(peer.stdout, 'data')) as [Buffer];
      const sender = new MllpSender({ host: '127.0.0.1', port: Number(port), ackTimeoutMs: 300 });
      expect(await sender.send('MSH|^~\\&|A|B|C|D|20240101||ADT^A08|3|P|2.5', '3')).toEqual({
        code: 'AA',
      });
      const sent = sender.send('MSH|^~\\&|A|B|C|D|20240101||ADT^A08|4|P|2.5', '4');
      // Once the message is out, the loop is busy for five times the timeout (in a setImmediate
      // callback, as in request handling: timers come next, then sockets); the ACK arrives
      // meanwhile.
      await new Promise<void>((resolve) =>
        setTimeout(
          () =>
            setImmediate(() => {
              const until = Date.now() + 1500;
              while (Date.now() < until);
              resolve();
            }),
          5,
        ),
      );
      expect(await sent).toEqual({ code: 'AA' });
    } finally {
      peer.kill();
    }
  });
});
