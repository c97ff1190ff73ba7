import { Logger } from '@nestjs/common';
import type { Logger as TypeOrmLoggerInterface } from 'typeorm';

/**
 * TypeORM's own loggers print a failed query with its parameters, and parameters are PHI. This
 * one logs the statement text (parameterized) and the PostgreSQL error code, constraint and
 * table, never parameters, messages (some quote the offending value) or the error detail.
 */
export class PhiSafeTypeOrmLogger implements TypeOrmLoggerInterface {
  private readonly logger = new Logger('Database');

  logQuery(): void {
    // Statements are not logged: their parameters carry PHI.
  }

  logQueryError(error: string | Error, query: string): void {
    const driver = error instanceof Error ? (error as Error & Record<string, unknown>) : undefined;
    this.logger.error({
      msg: 'Query failed',
      query: query.replace(/\s+/g, ' ').slice(0, 500),
      code: driver?.['code'],
      constraint: driver?.['constraint'],
      table: driver?.['table'],
    });
  }

  logQuerySlow(time: number, query: string): void {
    this.logger.warn({
      msg: 'Slow query',
      ms: time,
      query: query.replace(/\s+/g, ' ').slice(0, 500),
    });
  }

  logSchemaBuild(message: string): void {
    this.logger.log(message);
  }

  logMigration(message: string): void {
    this.logger.log(message);
  }

  log(level: 'log' | 'info' | 'warn', message: unknown): void {
    if (level === 'warn') {
      this.logger.warn(String(message));
    } else {
      this.logger.log(String(message));
    }
  }
}
