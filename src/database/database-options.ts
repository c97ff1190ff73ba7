import { DataSource, type DataSourceOptions } from 'typeorm';
import { MIGRATIONS } from '../../migrations/index.js';
import { ENTITIES } from './entities.js';
import { SnakeNamingStrategy } from './naming-strategy.js';
import { PhiSafeTypeOrmLogger } from './typeorm-logger.js';

/**
 * The one set of DataSource options, used by the application, the TypeORM CLI (data-source.ts)
 * and the tests. Schema changes only ever come from migrations.
 */
export function dataSourceOptions(url: string): DataSourceOptions {
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
    // A server that does not answer (down host, full backlog) fails the request in 5 s with a
    // 503, instead of holding it, and a pool slot, until the client gives up.
    connectTimeoutMS: 5000,
    extra: { max: 20, application_name: 'carevault' },
  };
}

export function createDataSource(url: string): DataSource {
  return new DataSource(dataSourceOptions(url));
}

/** host:port/database of a connection URL, never its credentials. */
export function describeDatabase(url: string): string {
  const parsed = new URL(url);
  return `${parsed.hostname}:${parsed.port || '5432'}${parsed.pathname}`;
}
