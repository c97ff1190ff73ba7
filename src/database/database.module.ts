import { Injectable, Logger, Module, OnModuleInit } from '@nestjs/common';
import { InjectDataSource, TypeOrmModule } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import { AppConfig } from '../config/config.js';
import { dataSourceOptions } from './database-options.js';
import { DatabaseServer } from './database-server.js';
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
    if (!this.config.runMigrationsOnStart) {
      return;
    }
    const applied = await this.dataSource.runMigrations({ transaction: 'each' });
    this.logger.log(
      applied.length > 0
        ? `Applied migrations: ${applied.map((m) => m.name).join(', ')}`
        : 'Schema is up to date',
    );
  }
}

@Module({
  imports: [
    TypeOrmModule.forRootAsync({
      imports: [DatabaseServerModule],
      inject: [DatabaseServer, AppConfig],
      useFactory: async (server: DatabaseServer, config: AppConfig) =>
        dataSourceOptions(await server.connectionUrl(), config.databasePool),
    }),
  ],
  providers: [MigrationRunner, UnitOfWork],
  exports: [UnitOfWork],
})
export class DatabaseModule {}
