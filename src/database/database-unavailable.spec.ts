import { createServer, type AddressInfo } from 'node:net';
import pg from 'pg';
import { QueryFailedError } from 'typeorm';
import { databaseProblem } from './database-unavailable.js';

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
  ])('reads SQLSTATE %s through TypeORM’s wrapper as %s', (code, problem) => {
    const driverError = Object.assign(new Error('server message'), { code });
    expect(databaseProblem(new QueryFailedError('INSERT …', [], driverError))).toBe(problem);
  });

  it('recognises a connection lost mid-query', () => {
    expect(databaseProblem(new Error('Connection terminated unexpectedly'))).toBe('unavailable');
  });

  it.each([
    ['a constraint violation', Object.assign(new Error('duplicate key'), { code: '23505' })],
    ['a serialization failure', Object.assign(new Error('could not serialize'), { code: '40001' })],
    ['a plain bug', new TypeError('x is undefined')],
    ['a non-error', 'boom'],
  ])('leaves %s alone', (_what, error) => {
    expect(databaseProblem(error)).toBeUndefined();
  });
});
