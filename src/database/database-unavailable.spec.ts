import { createServer, type AddressInfo, type Socket } from 'node:net';
import pg from 'pg';
import { QueryFailedError } from 'typeorm';
import { databaseProblem, sqlStateOf } from './database-unavailable.js';

/** A loopback port nothing listens on: bound, then released. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe('databaseProblem', () => {
  it('recognises the error node-postgres gives when no server listens', async () => {
    const client = new pg.Client({ host: '127.0.0.1', port: await closedPort(), user: 'x' });
    const error = await client.connect().then(
      () => undefined,
      (failure: unknown) => failure,
    );
    expect(databaseProblem(error)).toBe('unavailable');
  });

  it.each([
    ['25006', 'read-only'],
    ['53100', 'disk-full'],
    ['57P01', 'unavailable'],
    ['08006', 'unavailable'],
    ['40P01', 'conflict'],
    ['40001', 'conflict'],
  ])('reads SQLSTATE %s through TypeORM’s wrapper as %s', (code, problem) => {
    const driverError = Object.assign(new Error('server message'), { code });
    expect(databaseProblem(new QueryFailedError('INSERT …', [], driverError))).toBe(problem);
  });

  it('tells a full pool (busy) from a server that never completes a connection (unavailable)', async () => {
    // Accepts TCP connections and never answers, so a new client hangs in its handshake.
    const sockets: Socket[] = [];
    const silent = createServer((socket) => sockets.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const { port } = silent.address() as AddressInfo;
    const pool = new pg.Pool({
      host: '127.0.0.1',
      port,
      user: 'x',
      max: 1,
      connectionTimeoutMillis: 200,
    });
    try {
      // The first request opens the pool's only connection; the second waits for it.
      const [opening, waiting] = await Promise.allSettled([pool.connect(), pool.connect()]);
      expect(opening.status).toBe('rejected');
      expect(waiting.status).toBe('rejected');
      expect(databaseProblem((opening as PromiseRejectedResult).reason)).toBe('unavailable');
      expect(databaseProblem((waiting as PromiseRejectedResult).reason)).toBe('busy');
    } finally {
      await pool.end();
      sockets.forEach((socket) => socket.destroy());
      await new Promise((resolve) => silent.close(resolve));
    }
  });

  it('recognises a connection lost mid-query', () => {
    expect(databaseProblem(new Error('Connection terminated unexpectedly'))).toBe('unavailable');
  });

  it.each([
    ['a constraint violation', Object.assign(new Error('duplicate key'), { code: '23505' })],
    ['a plain bug', new TypeError('x is undefined')],
    ['a non-error', 'boom'],
  ])('leaves %s alone', (_what, error) => {
    expect(databaseProblem(error)).toBeUndefined();
  });
});

describe('sqlStateOf', () => {
  it("reads a database error's SQLSTATE, wrapped or not, and not Node's errno codes", () => {
    expect(sqlStateOf(Object.assign(new Error('x'), { code: '22007' }))).toBe('22007');
    expect(sqlStateOf({ driverError: { code: '3D000' } })).toBe('3D000');
    expect(sqlStateOf({ cause: { code: 'P0001' } })).toBe('P0001');
    for (const code of ['EPIPE', 'EBUSY', 'EPERM', 'ECONNREFUSED']) {
      expect(sqlStateOf(Object.assign(new Error('x'), { code }))).toBeUndefined();
    }
  });
});
