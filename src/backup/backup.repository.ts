import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type pg from 'pg';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import type { Readable, Writable } from 'node:stream';
import { DataSource, type QueryRunner } from 'typeorm';
import { MIGRATIONS } from '../../migrations/index.js';
import type { SequenceState, TableStart } from './backup-format.js';
import { foreignKeyOrder, type ForeignKey } from './table-order.js';

/**
 * Not backed up. audit_pending is written by a transaction in flight and emptied by its commit
 * (the audit chain's queue): a snapshot never holds a row of it worth keeping. Bulk Data export
 * jobs and files are copies of records kept for EXPORT_RETENTION_SECONDS: a backup would keep
 * them for as long as backups are kept.
 */
const TRANSIENT_TABLES = new Set(['audit_pending', 'export_job', 'export_chunk']);

/**
 * Rows that a freshly migrated database already holds, or that a service started on it writes
 * (search_index_state, blind_index_root); a restore replaces them.
 */
export const SEEDED_TABLES = [
  'migrations',
  'audit_chain_head',
  'search_index_state',
  'blind_index_root',
];

/** HL7 messages a restored database holds unfinished (see hl7InFlight). */
export interface Hl7InFlight {
  /** Inbound messages stored but not processed. */
  received: number;
  /** Outbound messages not yet delivered, per destination. */
  pending: { destination: string; count: number }[];
}

/** One connection, for a snapshot or a restore: COPY streams need the client itself. */
export class BackupSession {
  constructor(
    private readonly runner: QueryRunner,
    private readonly client: pg.PoolClient,
  ) {}

  query<T>(sql: string, parameters: unknown[] = []): Promise<T[]> {
    return this.runner.query(sql, parameters) as Promise<T[]>;
  }

  copyOut(table: TableStart): Readable & { rowCount: number } {
    return this.client.query(copyTo(`COPY ${target(table)} TO STDOUT`));
  }

  copyIn(table: TableStart): Writable & { rowCount: number } {
    return this.client.query(copyFrom(`COPY ${target(table)} FROM STDIN`));
  }

  /**
   * CareVault's tables, with the columns COPY reads and writes (no generated ones), parents
   * before the tables whose foreign keys refer to them (foreignKeyOrder): the order a backup
   * writes them in and a restore copies them in.
   */
  async tables(): Promise<TableStart[]> {
    const tables = (
      await this.query<{ table: string; columns: string[] }>(
        `SELECT c.relname AS "table", array_agg(a.attname::text ORDER BY a.attnum) AS columns
           FROM pg_class c
           JOIN pg_namespace n ON n.oid = c.relnamespace
           JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
          WHERE n.nspname = current_schema() AND c.relkind = 'r' AND a.attgenerated = ''
          GROUP BY c.relname`,
      )
    ).filter((row) => !TRANSIENT_TABLES.has(row.table));
    // Deferrable keys are left out: a restore defers them to its commit (deferForeignKeys).
    const keys = await this.query<ForeignKey>(
      `SELECT child.relname AS "table", parent.relname AS "references"
         FROM pg_constraint k
         JOIN pg_class child ON child.oid = k.conrelid
         JOIN pg_class parent ON parent.oid = k.confrelid
         JOIN pg_namespace n ON n.oid = child.relnamespace
        WHERE k.contype = 'f' AND NOT k.condeferrable AND n.nspname = current_schema()`,
    );
    const byName = new Map(tables.map((table) => [table.table, table]));
    return foreignKeyOrder([...byName.keys()], keys).map((name) => byName.get(name)!);
  }

  /** Foreign keys declared DEFERRABLE are checked at the restore's commit, whatever the order. */
  async deferForeignKeys(): Promise<void> {
    await this.query('SET CONSTRAINTS ALL DEFERRED');
  }

  /**
   * COPY into a temporary table with `table`'s columns and no constraints: for a table whose
   * parents are not in yet (a backup written before backups followed foreign-key order), its
   * rows wait there until `unstage` moves them in.
   */
  async stage(table: TableStart): Promise<Writable & { rowCount: number }> {
    await this.query(
      `CREATE TEMPORARY TABLE ${staged(table)} ON COMMIT DROP AS
         SELECT ${table.columns.map(quote).join(', ')} FROM ${quote(table.table)} WITH NO DATA`,
    );
    return this.client.query(
      copyFrom(`COPY ${staged(table)} (${table.columns.map(quote).join(', ')}) FROM STDIN`),
    );
  }

  /** Moves a staged table's rows into the table; as COPY does, identity values are kept. */
  async unstage(table: TableStart): Promise<void> {
    const columns = table.columns.map(quote).join(', ');
    await this.query(
      `INSERT INTO ${target(table)} OVERRIDING SYSTEM VALUE SELECT ${columns} FROM ${staged(table)}`,
    );
    await this.query(`DROP TABLE ${staged(table)}`);
  }

  async sequences(): Promise<SequenceState[]> {
    const rows = await this.query<{ name: string; last: string | null; start: string }>(
      `SELECT sequencename AS name, last_value::text AS last, start_value::text AS start
         FROM pg_sequences WHERE schemaname = current_schema() ORDER BY sequencename`,
    );
    return rows.map((row) => ({
      name: row.name,
      lastValue: row.last ?? row.start,
      isCalled: row.last !== null,
    }));
  }

  async setSequence(sequence: SequenceState): Promise<void> {
    await this.query(`SELECT setval(quote_ident($1)::regclass, $2::bigint, $3)`, [
      sequence.name,
      sequence.lastValue,
      sequence.isCalled,
    ]);
  }

  async migrations(): Promise<string[]> {
    const rows = await this.query<{ name: string }>(`SELECT name FROM migrations ORDER BY id`);
    return rows.map((row) => row.name);
  }

  async count(table: string): Promise<number> {
    const [row] = await this.query<{ n: string }>(`SELECT count(*) AS n FROM ${quote(table)}`);
    return Number(row!.n);
  }

  async serverVersion(): Promise<string> {
    const [row] = await this.query<{ version: string }>(
      `SELECT current_setting('server_version') AS version`,
    );
    return row!.version;
  }

  /** Empties a table that migrations seeded, before the backup's rows replace its rows. */
  async clearSeeded(table: string): Promise<void> {
    await this.query(`DELETE FROM ${quote(table)}`);
  }
}

@Injectable()
export class BackupRepository {
  constructor(@InjectDataSource() private readonly dataSource: DataSource) {}

  /**
   * Runs `work` in one read-only REPEATABLE READ transaction: every table is read as of the
   * same moment (what pg_dump does), while the service goes on writing.
   */
  snapshot<T>(work: (session: BackupSession) => Promise<T>): Promise<T> {
    return this.inTransaction('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY', work);
  }

  /** Runs `work` in one transaction: a restore is all or nothing. */
  restoring<T>(work: (session: BackupSession) => Promise<T>): Promise<T> {
    return this.inTransaction('BEGIN', work);
  }

  /** The migrations this CareVault knows, in order: the schema a restore can recreate. */
  knownMigrations(): string[] {
    return this.dataSource.migrations.map(
      (migration) => migration.name ?? migration.constructor.name,
    );
  }

  /** Applies every migration not yet applied; their names. */
  async runMigrations(): Promise<string[]> {
    const applied = await this.dataSource.runMigrations({ transaction: 'each' });
    return applied.map((migration) => migration.name);
  }

  /**
   * Brings the schema to exactly the first `count` migrations: reverts later ones (callers check
   * first that the database holds no data) and applies missing ones, through a DataSource that
   * knows only those.
   */
  async migrateTo(count: number): Promise<void> {
    let applied = await this.appliedCount();
    for (; applied > count; applied--) {
      await this.dataSource.undoLastMigration({ transaction: 'each' });
    }
    if (applied === count) return;
    const older = new DataSource({
      ...this.dataSource.options,
      migrations: MIGRATIONS.slice(0, count),
    });
    await older.initialize();
    try {
      await older.runMigrations({ transaction: 'each' });
    } finally {
      await older.destroy();
    }
  }

  /**
   * HL7 work the restored database holds unfinished: inbound messages stored but not processed
   * (the snapshot fell between their store and their processing), and outbound ones not yet
   * delivered, per destination.
   */
  async hl7InFlight(): Promise<Hl7InFlight> {
    const [inbound] = await this.dataSource.query<{ n: number }[]>(
      `SELECT count(*)::int AS n FROM hl7_message WHERE status = 'received'`,
    );
    const outbound = await this.dataSource.query<{ destination: string; count: number }[]>(
      `SELECT destination, count(*)::int AS count FROM hl7_outbox
        WHERE status = 'pending' GROUP BY destination ORDER BY destination`,
    );
    return { received: inbound?.n ?? 0, pending: outbound };
  }

  /** How many migrations the database has applied (none before the first run). */
  private async appliedCount(): Promise<number> {
    const [table] = await this.dataSource.query<{ present: boolean }[]>(
      `SELECT to_regclass('migrations') IS NOT NULL AS present`,
    );
    if (!table?.present) return 0;
    const [row] = await this.dataSource.query<{ n: number }[]>(
      'SELECT count(*)::int AS n FROM migrations',
    );
    return row?.n ?? 0;
  }

  private async inTransaction<T>(
    begin: string,
    work: (session: BackupSession) => Promise<T>,
  ): Promise<T> {
    const runner = this.dataSource.createQueryRunner();
    // TypeORM's PostgreSQL driver hands out the pool's node-postgres client.
    const client = (await runner.connect()) as pg.PoolClient;
    try {
      await runner.query(begin);
      const result = await work(new BackupSession(runner, client));
      await runner.query('COMMIT');
      return result;
    } catch (error) {
      await runner.query('ROLLBACK').catch(() => undefined);
      throw error;
    } finally {
      await runner.release();
    }
  }
}

function quote(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

function staged(table: TableStart): string {
  return `pg_temp.${quote(`restore_${table.table}`)}`;
}

function target(table: TableStart): string {
  return `${quote(table.table)} (${table.columns.map(quote).join(', ')})`;
}
