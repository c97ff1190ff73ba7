import type { ClientBase } from 'pg';
import { DataSource, type DataSourceOptions, type Migration } from 'typeorm';
import { MIGRATIONS } from '../../migrations/index.js';
import { ENTITIES } from './entities.js';
import { withMigrationLock } from './migration-lock.js';
import { SnakeNamingStrategy } from './naming-strategy.js';
import { PhiSafeTypeOrmLogger } from './typeorm-logger.js';

/** The connection pool: DATABASE_POOL_SIZE, DATABASE_WAIT_MS, DATABASE_STATEMENT_TIMEOUT_MS. */
export interface DatabasePool {
  size: number;
  /** How long a request waits for a connection, a new one or a pool's free one. */
  waitMs: number;
  /** How long one statement may run before PostgreSQL cancels it; 0 for no limit. */
  statementTimeoutMs: number;
}

/** The CLI's and the tools': admin commands (a backup's COPY of a table) run as long as needed. */
const DEFAULT_POOL: DatabasePool = { size: 20, waitMs: 5000, statementTimeoutMs: 0 };

/**
 * The one set of DataSource options, used by the application, the TypeORM CLI (data-source.ts)
 * and the tests. Schema changes only ever come from migrations.
 */
export function dataSourceOptions(
  url: string,
  pool: DatabasePool = DEFAULT_POOL,
): DataSourceOptions {
  return {
    type: 'postgres',
    url,
    entities: ENTITIES,
    migrations: MIGRATIONS,
    migrationsTableName: 'migrations',
    migrationsTransactionMode: 'each',
    namingStrategy: new SnakeNamingStrategy(),
    synchronize: false,
    migrationsRun: false,
    logging: ['error', 'warn', 'migration'],
    logger: new PhiSafeTypeOrmLogger(),
    maxQueryExecutionTime: 1000,
    // A server that does not answer (down host, full backlog), or a pool whose every connection
    // stays busy, fails the request with a 503 after this wait instead of holding it until the
    // client gives up. node-postgres uses the one timeout for both.
    connectTimeoutMS: pool.waitMs,
    extra: {
      max: pool.size,
      application_name: 'carevault',
      // PostgreSQL's JIT compiles a query when its estimated cost is high, as a search over many
      // rows is: a patient's 81,000 Observations sorted by date took 882 ms, 666 of them
      // compiling. Queries that return a page never win that back. A SET rather than a startup
      // option, which connection poolers such as PgBouncer refuse.
      // statement_timeout: a request's statement that runs past it (a search with many
      // criteria costs PostgreSQL seconds to plan) is cancelled by the server, rather than
      // holding a connection, and the client's request, for as long as it takes.
      // TimeZone, DateStyle and IntervalStyle: a hospital's database keeps local time and its
      // own date habits (ALTER DATABASE ... SET DateStyle = 'SQL, DMY'), which node-postgres
      // cannot read: every time came back null and every read answered 500. Times are read,
      // keyset cursors written and backups copied in one form, whatever the server's defaults.
      onConnect: (client: ClientBase) =>
        client.query(
          `SET jit = off; SET statement_timeout = ${Math.trunc(pool.statementTimeoutMs)};` +
            ` SET TimeZone = 'UTC'; SET DateStyle = 'ISO, MDY'; SET IntervalStyle = 'postgres'`,
        ),
    },
  };
}

type MigrationOptions = Parameters<DataSource['runMigrations']>[0];

/**
 * The TypeORM CLI's, restore's and the tests' DataSource: its migration runs and reverts take
 * the migration lock, as the service's do at start, so that none of them meets another.
 */
class LockingDataSource extends DataSource {
  override runMigrations(options?: MigrationOptions): Promise<Migration[]> {
    return this.locked(() => super.runMigrations(options));
  }

  override undoLastMigration(options?: MigrationOptions): Promise<void> {
    return this.locked(() => super.undoLastMigration(options));
  }

  private async locked<T>(work: () => Promise<T>): Promise<T> {
    const runner = this.createQueryRunner();
    try {
      return await withMigrationLock(runner, work);
    } finally {
      await runner.release();
    }
  }
}

export function createDataSource(url: string): DataSource {
  return new LockingDataSource(dataSourceOptions(url));
}

/** host:port/database of a connection URL, never its credentials. */
export function describeDatabase(url: string): string {
  const parsed = new URL(url);
  return `${parsed.hostname}:${parsed.port || '5432'}${parsed.pathname}`;
}
