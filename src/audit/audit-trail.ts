import { Injectable, Logger } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import { AppConfig } from '../config/config.js';
import { isRefusedStatement } from '../database/database-unavailable.js';
import { UnitOfWork } from '../database/unit-of-work.js';
import { Metrics } from '../metrics/metrics.js';
import type { AuditEntry } from './audit-record.js';
import { cliAuditEntry } from './cli-audit.js';
import { AuditRepository, AuditRowsDroppedError } from './audit.repository.js';

/** Rows per commit: bounds one statement's size under a burst. */
const MAX_GROUP = 500;

interface Waiting {
  entry: AuditEntry;
  resolve: () => void;
  reject: (error: unknown) => void;
}

/**
 * Appends audit entries to the chain. `record` resolves only once its row is committed; rows of
 * concurrent requests that arrive while a commit is running go together in the next one (group
 * commit), so throughput comes from batching, never from writing after the response.
 */
@Injectable()
export class AuditTrail {
  private readonly logger = new Logger('Audit');
  private waiting: Waiting[] = [];
  private draining: Promise<void> | undefined;

  constructor(
    private readonly repository: AuditRepository,
    private readonly unitOfWork: UnitOfWork,
    @InjectDataSource() private readonly dataSource: DataSource,
    private readonly config: AppConfig,
    private readonly metrics: Metrics,
  ) {
    if (config.auditSkippedForBenchmark) {
      this.logger.warn('AUDIT_BENCHMARK_SKIP is set: audit rows are NOT written');
    }
  }

  /** Commits the entry (with whatever else is waiting); rejects when it could not be stored. */
  record(entry: AuditEntry): Promise<void> {
    if (this.config.auditSkippedForBenchmark) {
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      this.waiting.push({ entry, resolve, reject });
      this.draining ??= this.drain();
    });
  }

  /**
   * Appends the entry inside the current unit of work, so that a write and its audit row
   * commit together or not at all.
   */
  async recordInTransaction(entry: AuditEntry): Promise<void> {
    if (this.config.auditSkippedForBenchmark) {
      return;
    }
    await this.metrics.timeAuditWrite('transaction', () =>
      this.unitOfWork.run((manager) =>
        this.repository.append(manager, [entry], this.config.auditWriteTimeoutMs),
      ),
    );
  }

  /**
   * Runs an admin CLI command and records it, succeeded or failed. The row is committed before
   * the command reports success.
   */
  async command<T>(
    name: string,
    details: Partial<AuditEntry> | ((result: T) => Partial<AuditEntry>),
    work: () => Promise<T>,
  ): Promise<T> {
    let result: T;
    try {
      result = await work();
    } catch (error) {
      const known = typeof details === 'function' ? {} : details;
      // What was asked for (the account, the client) is what an investigator searches by.
      const detail = known.detail ?? 'failed';
      await this.record(cliAuditEntry(name, { ...known, outcome: 'failure', detail }));
      throw error;
    }
    await this.record(
      cliAuditEntry(name, typeof details === 'function' ? details(result) : details),
    );
    return result;
  }

  /** Resolves when every entry handed over so far is committed (or failed): for shutdown. */
  async flush(): Promise<void> {
    while (this.draining) {
      await this.draining;
    }
  }

  /** One statement, committed on its own: audit_append is atomic. */
  private append(entries: AuditEntry[]): Promise<void> {
    return this.metrics.timeAuditWrite('queued', () =>
      this.repository.append(this.dataSource.manager, entries, this.config.auditWriteTimeoutMs),
    );
  }

  /**
   * PostgreSQL refused the group for what one of its rows holds: the rows go again one by one,
   * so that only the requests whose rows are refused fail, not every request that happened to
   * share the commit. Not when the database cannot write at all (down, read-only, a lock held
   * past AUDIT_WRITE_TIMEOUT_MS): each row would meet the same, one wait after another.
   */
  private async appendOneByOne(group: Waiting[]): Promise<void> {
    for (const waiting of group) {
      try {
        await this.append([waiting.entry]);
        waiting.resolve();
      } catch (error) {
        waiting.reject(error);
      }
    }
  }

  private async drain(): Promise<void> {
    try {
      while (this.waiting.length > 0) {
        const group = this.waiting.splice(0, MAX_GROUP);
        try {
          await this.append(group.map((waiting) => waiting.entry));
          for (const waiting of group) waiting.resolve();
        } catch (error) {
          this.logger.error({ err: { message: (error as Error).message } }, 'Audit write failed');
          // Rows dropped in the database may be one user's: the others' go again on their own.
          const dropped = error instanceof AuditRowsDroppedError;
          if (group.length > 1 && (isRefusedStatement(error) || dropped)) {
            await this.appendOneByOne(group);
          } else {
            for (const waiting of group) waiting.reject(error);
          }
        }
      }
    } finally {
      this.draining = undefined;
    }
  }
}
