import { QueryFailedError, type DataSource, type EntityManager } from 'typeorm';
import { createDataSource } from '../../src/database/database-options.js';
import { preparedQuery } from '../../src/database/prepared-query.js';

describe('preparedQuery', () => {
  let dataSource: DataSource;

  beforeAll(async () => {
    dataSource = await createDataSource(process.env['DATABASE_URL']!).initialize();
  });

  afterAll(async () => {
    await dataSource.destroy();
  });

  const preparedOnConnection = async (manager: EntityManager, text: string): Promise<number> => {
    const [row] = await manager.query<{ n: number }[]>(
      'SELECT count(*)::int AS n FROM pg_prepared_statements WHERE statement = $1',
      [text],
    );
    return row!.n;
  };

  it('runs a statement prepared once on the connection of the transaction', async () => {
    const text = 'SELECT $1::int + 1 AS answer';
    await dataSource.transaction(async (manager) => {
      expect(await preparedQuery(manager, text, [41])).toEqual([{ answer: 42 }]);
      expect(await preparedQuery(manager, text, [1])).toEqual([{ answer: 2 }]);
      expect(await preparedOnConnection(manager, text)).toBe(1);
    });
  });

  it('gives back the pooled connection it borrowed outside a transaction', async () => {
    for (let i = 0; i < 50; i++) {
      expect(await preparedQuery(dataSource.manager, 'SELECT $1::int AS n', [i])).toEqual([
        { n: i },
      ]);
    }
    const pool = (
      dataSource.driver as unknown as { master: { totalCount: number; idleCount: number } }
    ).master;
    expect(pool.idleCount).toBe(pool.totalCount);
  });

  it('fails as TypeORM queries fail, with the driver error kept', async () => {
    const failure = preparedQuery(dataSource.manager, 'SELECT $1::int AS n', ['not a number']);
    await expect(failure).rejects.toBeInstanceOf(QueryFailedError);
    await expect(failure).rejects.toMatchObject({ driverError: { code: '22P02' } });
  });

  it('stops preparing new statements past its cap, and still runs them', async () => {
    await dataSource.transaction(async (manager) => {
      const texts = Array.from({ length: 210 }, (_, i) => `SELECT $1::int + ${i} AS n`);
      for (const [i, text] of texts.entries()) {
        expect(await preparedQuery(manager, text, [1])).toEqual([{ n: 1 + i }]);
      }
      expect(await preparedOnConnection(manager, texts[0]!)).toBe(1);
      expect(await preparedOnConnection(manager, texts.at(-1)!)).toBe(0);
    });
  });
});
