import {
  Injectable,
  Logger,
  type OnApplicationBootstrap,
  type OnApplicationShutdown,
} from '@nestjs/common';
import { performance } from 'node:perf_hooks';
import { UnitOfWork } from './unit-of-work.js';

/** How often the database's clock is read again: three statements each time, a trifle. */
const READ_EVERY_MS = 2_000;
/** Readings per refresh: the one with the shortest round trip bounds the time most tightly. */
const SAMPLES = 3;
/**
 * How much faster than this host's monotonic clock the database's may run, as a fraction: two
 * quartz clocks differ by up to about 50 ppm, and NTP slews one by up to 500 ppm for a while.
 * Over READ_EVERY_MS, 1 ms more than the elapsed time: a stamp a little late, never early.
 */
const RATE_ALLOWANCE = 0.0005;

/**
 * The database server's time, kept by this process without a round trip each time it is asked.
 * Versions are stamped here (meta.lastUpdated) and found again by instants read off
 * PostgreSQL's clock (the `_since` of a history poll, an export's transactionTime, see
 * ResourceRepository.completeUpTo). Until 2026-12-07 they were stamped by this host's own
 * clock: when it ran behind the database server's, as two hosts' clocks do by milliseconds under
 * NTP and by seconds without it, a version written after a poll was stamped before that poll's
 * instant, and a client syncing `_since` never saw it (5 s behind: every one). `now()` is never
 * earlier than the database's time (the reading is taken as of when its query was sent, and
 * advanced by the monotonic clock, so a step of the wall clock changes nothing); it is later by
 * at most the reading's round trip and the rate allowance.
 */
@Injectable()
export class DatabaseClock implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('Database');
  /** The database's time in ms since the epoch, no earlier than its time at monotonic `at`. */
  private reading: { databaseMs: number; at: number } | undefined;
  private latest = 0;
  private timer: NodeJS.Timeout | undefined;
  private warned = false;

  constructor(private readonly unitOfWork: UnitOfWork) {}

  async onApplicationBootstrap(): Promise<void> {
    await this.refresh();
    this.timer = setInterval(() => void this.refresh(), READ_EVERY_MS);
    this.timer.unref();
  }

  onApplicationShutdown(): void {
    clearInterval(this.timer);
  }

  /**
   * The database server's time now, to the millisecond, rounded up; never before an earlier
   * answer (a new reading, tighter than the last one's allowance, would step back a little).
   */
  now(): Date {
    if (this.reading === undefined) return new Date();
    const elapsed = performance.now() - this.reading.at;
    const ms = Math.ceil(this.reading.databaseMs + elapsed * (1 + RATE_ALLOWANCE));
    this.latest = Math.max(this.latest, ms);
    return new Date(this.latest);
  }

  /**
   * Reads the database's clock again. When it cannot (the database is down), the last reading
   * stays, and before any this host's clock serves: what it stamps then may be early by the
   * skew, said once in the log.
   */
  async refresh(): Promise<void> {
    try {
      this.reading = await this.readClock();
      this.warned = false;
    } catch {
      if (this.reading === undefined && !this.warned) {
        this.warned = true;
        this.logger.warn(
          "The database server's clock could not be read: versions are stamped by this host's " +
            'clock until it can, and a `_since` poll may miss some if the two differ',
        );
      }
    }
  }

  private async readClock(): Promise<{ databaseMs: number; at: number }> {
    let best: { databaseMs: number; at: number; roundTrip: number } | undefined;
    for (let sample = 0; sample < SAMPLES; sample++) {
      const sent = performance.now();
      const [row] = await this.unitOfWork.manager.query<{ ms: number }[]>(
        `SELECT (extract(epoch FROM clock_timestamp()) * 1000)::float8 AS ms`,
      );
      const roundTrip = performance.now() - sent;
      if (best === undefined || roundTrip < best.roundTrip) {
        best = { databaseMs: row!.ms, at: sent, roundTrip };
      }
    }
    return { databaseMs: best!.databaseMs, at: best!.at };
  }
}
