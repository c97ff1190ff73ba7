import { jest } from '@jest/globals';
import { Logger } from '@nestjs/common';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { Registry } from 'prom-client';
import { RedisThrottlerStorage } from './redis-throttler-storage.js';

/** A port on 127.0.0.1 where nothing listens: bound by the system, then closed. */
function closedPort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/**
 * Just enough of Redis for ioredis: INFO for its ready check, and any script answered with
 * 7 hits, so that a count from Redis is told apart from one kept in the process.
 */
function fakeRedis(port: number): Promise<{ close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    let pending = '';
    socket.on('data', (chunk) => {
      pending += chunk.toString('latin1');
      // Each command is an array of bulk strings: *<n>\r\n then $<len>\r\n<arg>\r\n n times.
      for (;;) {
        const header = /^\*(\d+)\r\n/.exec(pending);
        if (!header) return;
        let at = header[0].length;
        const args: string[] = [];
        for (let i = 0; i < Number(header[1]); i++) {
          const bulk = /^\$(\d+)\r\n/.exec(pending.slice(at));
          if (!bulk || pending.length < at + bulk[0].length + Number(bulk[1]) + 2) return;
          at += bulk[0].length;
          args.push(pending.slice(at, at + Number(bulk[1])));
          at += Number(bulk[1]) + 2;
        }
        pending = pending.slice(at);
        const command = args[0]?.toUpperCase();
        if (command === 'INFO') {
          const info = 'loading:0\r\n';
          socket.write(`$${info.length}\r\n${info}\r\n`);
        } else if (command === 'EVALSHA' || command === 'EVAL') {
          socket.write('*4\r\n:7\r\n:60000\r\n:0\r\n:0\r\n');
        } else {
          socket.write('+OK\r\n');
        }
      }
    });
  });
  return new Promise((resolve) =>
    server.listen(port, '127.0.0.1', () =>
      resolve({
        close: () =>
          new Promise<void>((closed) => {
            for (const socket of sockets) socket.destroy();
            server.close(() => closed());
          }),
      }),
    ),
  );
}

async function eventually(check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe('RedisThrottlerStorage', () => {
  let storage: RedisThrottlerStorage | undefined;
  let redis: { close(): Promise<void> } | undefined;

  afterEach(async () => {
    await storage?.onModuleDestroy();
    await redis?.close();
    jest.restoreAllMocks();
  });

  it('counts in the process while Redis is unreachable, and in Redis again once it answers', async () => {
    const warn = jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
    const log = jest.spyOn(Logger.prototype, 'log').mockImplementation(() => undefined);
    const port = await closedPort();
    const registry = new Registry();
    storage = new RedisThrottlerStorage(`redis://127.0.0.1:${port}`, registry);
    const fallback = async (): Promise<number | undefined> =>
      (await registry.getSingleMetric('carevault_rate_limit_fallback')!.get()).values[0]?.value;
    const hit = () => storage!.increment('login:203.0.113.9', 60_000, 2, 60_000, 'login');

    // Answered at once from this process, with the limit still applied.
    await expect(hit()).resolves.toMatchObject({ totalHits: 1, isBlocked: false });
    await expect(hit()).resolves.toMatchObject({ totalHits: 2, isBlocked: false });
    await expect(hit()).resolves.toMatchObject({ totalHits: 3, isBlocked: true });
    expect(await fallback()).toBe(1);

    redis = await fakeRedis(port);
    await eventually(async () => (await hit()).totalHits === 7);
    expect(await fallback()).toBe(0);
    expect(log).toHaveBeenCalledWith(expect.stringMatching(/Redis answers again/));

    // A second outage is a second warning; reconnection attempts in between add none.
    await redis.close();
    redis = undefined;
    await eventually(async () => (await hit()).isBlocked);
    await new Promise((resolve) => setTimeout(resolve, 500));
    await hit();
    const warnings = warn.mock.calls.map(([message]) => String(message));
    expect(warnings).toHaveLength(2);
    for (const message of warnings) {
      expect(message).toMatch(/^Rate-limit counters: Redis unreachable \(\w+\)/);
      // Nothing of the request: no key, no address.
      expect(message).not.toContain('203.0.113.9');
    }
    expect(await fallback()).toBe(1);
  });
});
