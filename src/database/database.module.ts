import { Injectable, Logger, Module, OnModuleInit } from '@nestjs/common';
import { InjectDataSource, TypeOrmModule } from '@nestjs/typeorm';
import { MigrationExecutor, type DataSource, type Migration } from 'typeorm';
import { AppConfig } from '../config/config.js';
import { ConfigError } from '../config/env.schema.js';
import {
  CONNECT_ATTEMPTS,
  CONNECT_RETRY_MS,
  connectDataSource,
  connectRetries,
} from './database-connect.js';
import { DatabaseClock } from './database-clock.js';
import { dataSourceOptions } from './database-options.js';
import { DatabaseServer } from './database-server.js';
import { withMigrationLock } from './migration-lock.js';
import { UnitOfWork } from './unit-of-work.js';

@Module({ providers: [DatabaseServer], exports: [DatabaseServer] })
class DatabaseServerModule {}

/** Applies pending migrations at start when configured to (always in embedded mode). */
@Injectable()
class MigrationRunner implements OnModuleInit {
  private readonly logger = new Logger('Database');

  constructor(
    @InjectDataSource() private readonly dataSource: DataSource,
    private readonly config: AppConfig,
  ) {}

  async onModuleInit(): Promise<void> {
    if (this.config.checksSchema) {
      await this.refuseNewerSchema();
    }
    if (!this.config.runMigrationsOnStart) {
      if (this.config.checksSchema) {
        await this.refuseOutdatedSchema();
      }
      return;
    }
    // A migration may rewrite or index a whole table: it runs without the requests' statement
    // timeout, on a connection given back with the timeout set again.
    const runner = this.dataSource.createQueryRunner();
    let applied: Migration[];
    try {
      await runner.query('SET statement_timeout = 0');
      const executor = new MigrationExecutor(this.dataSource, runner);
      executor.transaction = 'each';
      applied = await withMigrationLock(runner, () => executor.executePendingMigrations());
    } finally {
      const { statementTimeoutMs } = this.config.databasePool;
      try {
        await runner.query(`SET statement_timeout = ${Math.trunc(statementTimeoutMs)}`);
      } finally {
        await runner.release();
      }
    }
    this.logger.log(
      applied.length > 0
        ? `Applied migrations: ${applied.map((m) => m.name).join(', ')}`
        : 'Schema is up to date',
    );
  }

  /**
   * Without this, a service on a schema it does not know starts, answers ready, and fails every
   * request on a missing table ("audit trail unavailable") without a word about migrations; a
   * command fails on a column that does not exist.
   */
  private async refuseOutdatedSchema(): Promise<void> {
    const runner = this.dataSource.createQueryRunner();
    try {
      const pending = await new MigrationExecutor(this.dataSource, runner).getPendingMigrations();
      if (pending.length > 0) {
        const count = pending.length === 1 ? '1 migration' : `${pending.length} migrations`;
        throw new ConfigError(
          `CareVault failed to start: the database schema is ${count} behind this version: ` +
            'run `npm run migration:run`, or set MIGRATIONS_RUN=true',
        );
      }
    } finally {
      await runner.release();
    }
  }

  /**
   * A database a newer version migrated: this one starts on it, and writes what that version
   * changed in the old way (search rows in the old format, which its searches then miss) without
   * a word. Refused, as an older instance left running after an upgrade is the usual cause.
   */
  private async refuseNewerSchema(): Promise<void> {
    const runner = this.dataSource.createQueryRunner();
    try {
      const executed = await new MigrationExecutor(this.dataSource, runner).getExecutedMigrations();
      // Migrations are never removed: an older version's are all among this one's.
      const known = new Set(
        this.dataSource.migrations.map((migration) => migration.name ?? migration.constructor.name),
      );
      const unknown = executed.map(({ name }) => name).filter((name) => !known.has(name));
      if (unknown.length > 0) {
        throw new ConfigError(
          'CareVault failed to start: a newer version of CareVault migrated this database ' +
            `(${unknown.join(', ')} is unknown to this version): run that version or a later one`,
        );
      }
    } finally {
      await runner.release();
    }
  }
}

@Module({
  imports: [
    TypeOrmModule.forRootAsync({
      imports: [DatabaseServerModule],
      inject: [DatabaseServer, AppConfig],
      useFactory: async (server: DatabaseServer, config: AppConfig) => ({
        ...dataSourceOptions(await server.connectionUrl(), config.databasePool),
        retryAttempts: CONNECT_ATTEMPTS,
        retryDelay: CONNECT_RETRY_MS,
        toRetry: connectRetries(),
      }),
      dataSourceFactory: (options) => connectDataSource(options!),
    }),
  ],
  providers: [MigrationRunner, UnitOfWork, DatabaseClock],
  exports: [UnitOfWork, DatabaseClock],
})
export class DatabaseModule {}
