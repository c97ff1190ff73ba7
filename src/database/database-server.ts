import { Injectable, Logger, OnApplicationShutdown } from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import { DataSource } from 'typeorm';
import { AppConfig } from '../config/config.js';
import { describeDatabase } from './database-options.js';
import { EmbeddedPostgres } from './embedded-postgres.js';

/** The PostgreSQL server in use: the configured one, or an embedded one started on demand. */
@Injectable()
export class DatabaseServer implements OnApplicationShutdown {
  private readonly logger = new Logger('Database');
  private embedded: EmbeddedPostgres | undefined;

  constructor(
    private readonly config: AppConfig,
    private readonly moduleRef: ModuleRef,
  ) {}

  async connectionUrl(): Promise<string> {
    const external = this.config.databaseUrl;
    if (external) {
      this.logger.log(
        `Database: external PostgreSQL at ${describeDatabase(external)} (DATABASE_URL)`,
      );
      return external;
    }
    this.embedded = new EmbeddedPostgres(this.config.dataDir);
    const url = await this.embedded.start();
    this.logger.log(
      `Database: embedded PostgreSQL at ${describeDatabase(url)} (DATABASE_URL unset)`,
    );
    return url;
  }

  /** Closes the pool before stopping the embedded server, whatever order Nest calls hooks in. */
  async onApplicationShutdown(): Promise<void> {
    if (!this.embedded) {
      return;
    }
    const dataSource = this.moduleRef.get(DataSource, { strict: false });
    if (dataSource.isInitialized) {
      await dataSource.destroy();
    }
    await this.embedded.stop();
  }
}
