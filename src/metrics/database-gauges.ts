import { Injectable, type OnModuleInit } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type pg from 'pg';
import { Gauge } from 'prom-client';
import type { DataSource } from 'typeorm';
import type { PostgresDriver } from 'typeorm/driver/postgres/PostgresDriver.js';
import { AppConfig } from '../config/config.js';
import { Metrics } from './metrics.js';

/** The destination label of outbox rows for destinations HL7_OUTBOUND no longer names. */
const UNCONFIGURED = 'unconfigured';

/**
 * Gauges read at scrape time: the connection pool, and the backlogs an operator must act on
 * (HL7 messages in error or not yet processed, outbound messages pending or dead, in all and per
 * destination, and how long each destination's queue has waited; Subscription notifications waiting, and Subscriptions
 * stopped in error). The counts use the status indexes; a database that does not answer shows
 * as carevault_database_up 0.
 */
@Injectable()
export class DatabaseGauges implements OnModuleInit {
  constructor(
    @InjectDataSource() private readonly dataSource: DataSource,
    private readonly metrics: Metrics,
    private readonly config: AppConfig,
  ) {}

  onModuleInit(): void {
    const registers = [this.metrics.registry];
    const pool = (): pg.Pool | undefined =>
      (this.dataSource.driver as PostgresDriver).master as pg.Pool | undefined;
    new Gauge({
      name: 'carevault_db_pool_connections',
      help: 'Database pool connections: total open, idle, and requests waiting for one',
      labelNames: ['state'] as const,
      registers,
      collect() {
        const current = pool();
        this.set({ state: 'total' }, current?.totalCount ?? 0);
        this.set({ state: 'idle' }, current?.idleCount ?? 0);
        this.set({ state: 'waiting' }, current?.waitingCount ?? 0);
      },
    });
    new Gauge({
      name: 'carevault_db_pool_max',
      help: 'Largest number of connections the pool opens',
      registers,
      collect() {
        this.set(pool()?.options.max ?? 0);
      },
    });
    const counts = (sql: string) => async (): Promise<Map<string, number>> => {
      const rows = await this.dataSource.query<{ status: string; n: string }[]>(sql);
      return new Map(rows.map((row) => [row.status, Number(row.n)]));
    };
    const hl7Backlog = counts(
      `SELECT status, count(*) AS n FROM hl7_message WHERE status IN ('error', 'received') GROUP BY status`,
    );
    const outbox = counts(
      `SELECT status, count(*) AS n FROM hl7_outbox WHERE status IN ('pending', 'dead') GROUP BY status`,
    );
    new Gauge({
      name: 'carevault_hl7_messages_stored',
      help: 'Stored inbound HL7 messages that need attention: error (kept for reprocessing) and received (not yet processed)',
      labelNames: ['status'] as const,
      registers,
      async collect() {
        const found = await hl7Backlog().catch(() => undefined);
        this.reset();
        // Unknown while the database is down: no sample rather than a reassuring zero.
        if (found) {
          for (const status of ['error', 'received']) this.set({ status }, found.get(status) ?? 0);
        }
      },
    });
    new Gauge({
      name: 'carevault_hl7_outbox_depth',
      help: 'Outbound HL7 messages waiting to be sent (pending) or given up on (dead)',
      labelNames: ['status'] as const,
      registers,
      async collect() {
        const found = await outbox().catch(() => undefined);
        this.reset();
        if (found) {
          for (const status of ['pending', 'dead']) this.set({ status }, found.get(status) ?? 0);
        }
      },
    });
    const dataSource = this.dataSource;
    const configured = this.config.hl7Outbound.destinations.map(({ name }) => name);
    new Gauge({
      name: 'carevault_hl7_outbox_destination_depth',
      help: 'Outbound HL7 messages pending or dead, per destination as HL7_OUTBOUND names it; those of destinations it no longer names together as "unconfigured"',
      labelNames: ['destination', 'status'] as const,
      registers,
      async collect() {
        // Label values are configured names only, never a column's text: the series stay as few
        // as the destinations, and a dashboard sees every one, 0 included, from the first scrape.
        const rows = await dataSource
          .query<{ destination: string | null; status: string; n: string }[]>(
            `SELECT CASE WHEN destination = ANY($1::text[]) THEN destination END AS destination,
                    status, count(*) AS n
               FROM hl7_outbox WHERE status IN ('pending', 'dead') GROUP BY 1, 2`,
            [configured],
          )
          .catch(() => undefined);
        this.reset();
        if (!rows) return;
        const found = new Map(
          rows.map((row) => [`${row.destination ?? UNCONFIGURED} ${row.status}`, Number(row.n)]),
        );
        for (const destination of [...configured, UNCONFIGURED]) {
          for (const status of ['pending', 'dead']) {
            this.set({ destination, status }, found.get(`${destination} ${status}`) ?? 0);
          }
        }
      },
    });
    new Gauge({
      name: 'carevault_hl7_outbox_oldest_pending_seconds',
      help: 'Age of the oldest pending outbound HL7 message, per destination: the head of its queue, which holds the rest back',
      labelNames: ['destination'] as const,
      registers,
      async collect() {
        // A queue waits on its head for as long as the destination refuses or cannot be reached
        // (dead only after a failed delivery): the depth of a stuck queue grows as slowly as
        // Patients change, where its age tells it within minutes.
        const rows = await dataSource
          .query<{ destination: string; age: string }[]>(
            `SELECT destination, extract(epoch FROM now() - min(created_at)) AS age
               FROM hl7_outbox WHERE status = 'pending' GROUP BY destination`,
          )
          .catch(() => undefined);
        this.reset();
        for (const { destination, age } of rows ?? []) this.set({ destination }, Number(age));
      },
    });
    new Gauge({
      name: 'carevault_subscription_notifications_pending',
      help: 'Subscription notifications queued and not yet delivered, and the age in seconds of the oldest',
      labelNames: ['measure'] as const,
      registers,
      async collect() {
        // Read through the pending rows' own index: delivered ones, kept a week, are not counted.
        const rows = await dataSource
          .query<{ n: number; age: number | null }[]>(
            `SELECT count(*)::int AS n, extract(epoch FROM now() - min(created_at))::float8 AS age
               FROM subscription_notification WHERE status = 'pending'`,
          )
          .catch(() => undefined);
        this.reset();
        const row = rows?.[0];
        if (row) {
          this.set({ measure: 'count' }, row.n);
          this.set({ measure: 'oldest_seconds' }, row.age ?? 0);
        }
      },
    });
    const subscriptions = counts(
      `SELECT status, count(*) AS n FROM fhir_subscription GROUP BY status`,
    );
    new Gauge({
      name: 'carevault_subscriptions',
      help: 'Subscriptions by status: error ones have stopped notifying until their owner starts them again',
      labelNames: ['status'] as const,
      registers,
      async collect() {
        const found = await subscriptions().catch(() => undefined);
        this.reset();
        if (found) {
          for (const status of ['requested', 'active', 'error', 'off']) {
            this.set({ status }, found.get(status) ?? 0);
          }
        }
      },
    });
    new Gauge({
      name: 'carevault_database_up',
      help: '1 when the database answered this scrape, 0 when it did not',
      registers,
      async collect() {
        this.set(
          await dataSource.query('SELECT 1').then(
            () => 1,
            () => 0,
          ),
        );
      },
    });
  }
}
