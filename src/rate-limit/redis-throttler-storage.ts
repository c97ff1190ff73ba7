import { Logger, type OnModuleDestroy } from '@nestjs/common';
import type { ThrottlerStorage } from '@nestjs/throttler';
import { Redis } from 'ioredis';
import { Gauge, type Registry } from 'prom-client';
import { MemoryThrottlerStorage } from './memory-throttler-storage.js';

/**
 * One atomic step of a fixed-window counter with blocking, shared by every instance:
 * KEYS[1] hits, KEYS[2] block marker; ARGV ttl ms, limit, block duration ms.
 * Returns hits, ms left in the window, blocked (0/1) and ms left of the block.
 */
const INCREMENT = `
local blockLeft = redis.call('PTTL', KEYS[2])
if blockLeft > 0 then
  return { tonumber(redis.call('GET', KEYS[1]) or '0'), redis.call('PTTL', KEYS[1]), 1, blockLeft }
end
local hits = redis.call('INCR', KEYS[1])
if hits == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local windowLeft = redis.call('PTTL', KEYS[1])
if hits > tonumber(ARGV[2]) then
  redis.call('SET', KEYS[2], '1', 'PX', ARGV[3])
  return { hits, windowLeft, 1, tonumber(ARGV[3]) }
end
return { hits, windowLeft, 0, 0 }
`;

/**
 * Longest a rate-limit check waits for Redis. It answers in a millisecond; a Redis that does
 * not (a network partition, no reset) must not hold every request until TCP gives up.
 */
const COMMAND_TIMEOUT_MS = 500;

/** During an outage, how often one request tries Redis again once the connection is back. */
const PROBE_MS = 1_000;

interface Hits {
  totalHits: number;
  timeToExpire: number;
  isBlocked: boolean;
  timeToBlockExpire: number;
}

/**
 * Rate-limit counters in Redis (REDIS_URL), so that several instances share the limits.
 *
 * Redis holds only counters, so it must not take the API down with it: while it cannot be
 * reached, the counters are kept in this process (each instance then allows the full rate, as
 * without REDIS_URL), one warning is logged per outage, and carevault_rate_limit_fallback is 1.
 * ioredis reconnects on its own; the first command that succeeds afterwards ends the outage.
 */
export class RedisThrottlerStorage implements ThrottlerStorage, OnModuleDestroy {
  private readonly logger = new Logger('RateLimit');
  private readonly redis: Redis;
  private readonly fallback = new MemoryThrottlerStorage();
  private readonly fallbackGauge: Gauge;
  /** Set while Redis is unreachable: when it started, and when to try Redis next. */
  private outage: { since: number; probeAt: number } | undefined;

  constructor(url: string, registry: Registry) {
    this.redis = new Redis(url, {
      lazyConnect: false,
      maxRetriesPerRequest: 2,
      commandTimeout: COMMAND_TIMEOUT_MS,
      // disconnect() (shutdown during an outage) otherwise waits 2 s on a socket that never opened.
      disconnectTimeout: 100,
    });
    this.redis.defineCommand('carevaultThrottle', { numberOfKeys: 2, lua: INCREMENT });
    // ioredis emits an error for every failed (re)connection; unheard, it prints each one.
    this.redis.on('error', (error: Error) => this.startOutage(error));
    this.fallbackGauge = new Gauge({
      name: 'carevault_rate_limit_fallback',
      help: '1 while Redis cannot be reached and rate-limit counters are kept in this process',
      registers: [registry],
    });
    this.fallbackGauge.set(0);
  }

  async increment(
    key: string,
    ttl: number,
    limit: number,
    blockDuration: number,
    throttlerName: string,
  ): Promise<Hits> {
    const now = Date.now();
    // In an outage, only the first request after PROBE_MS tries Redis, and only once ioredis
    // has a connection again: the others are not made to wait for a Redis that is down.
    if (this.outage && (now < this.outage.probeAt || this.redis.status !== 'ready')) {
      return this.fallback.increment(key, ttl, limit, blockDuration, throttlerName);
    }
    if (this.outage) this.outage.probeAt = now + PROBE_MS;
    try {
      const hits = await this.redisIncrement(key, ttl, limit, blockDuration, throttlerName);
      this.endOutage();
      return hits;
    } catch (error) {
      this.startOutage(error);
      return this.fallback.increment(key, ttl, limit, blockDuration, throttlerName);
    }
  }

  private async redisIncrement(
    key: string,
    ttl: number,
    limit: number,
    blockDuration: number,
    throttlerName: string,
  ): Promise<Hits> {
    const base = `carevault:throttle:${throttlerName}:${key}`;
    const [hits, windowLeft, blocked, blockLeft] = (await (
      this.redis as unknown as {
        carevaultThrottle(...args: (string | number)[]): Promise<number[]>;
      }
    ).carevaultThrottle(`${base}:hits`, `${base}:block`, ttl, limit, blockDuration)) as [
      number,
      number,
      number,
      number,
    ];
    return {
      totalHits: hits,
      timeToExpire: Math.ceil(Math.max(windowLeft, 0) / 1000),
      isBlocked: blocked === 1,
      timeToBlockExpire: Math.ceil(Math.max(blockLeft, 0) / 1000),
    };
  }

  private startOutage(error: unknown): void {
    const now = Date.now();
    if (this.outage) {
      this.outage.probeAt = now + PROBE_MS;
      return;
    }
    this.outage = { since: now, probeAt: now + PROBE_MS };
    this.fallbackGauge.set(1);
    // The error's code or class only: a message could quote a command, and keys hold addresses.
    const reason =
      error instanceof Error ? ((error as NodeJS.ErrnoException).code ?? error.name) : 'unknown';
    this.logger.warn(
      `Rate-limit counters: Redis unreachable (${reason}); counting in this process until it answers`,
    );
  }

  private endOutage(): void {
    if (!this.outage) return;
    const seconds = Math.round((Date.now() - this.outage.since) / 1000);
    this.outage = undefined;
    this.fallbackGauge.set(0);
    this.logger.log(`Rate-limit counters: Redis answers again after ${seconds} s; counting there`);
  }

  async onModuleDestroy(): Promise<void> {
    this.fallback.onModuleDestroy();
    // QUIT would wait for a connection that may never come back.
    if (this.redis.status === 'ready') {
      await this.redis.quit();
    } else {
      this.redis.disconnect();
    }
  }
}
