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
});
