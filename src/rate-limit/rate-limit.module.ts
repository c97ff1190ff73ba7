import { DynamicModule, Module } from '@nestjs/common';
import { APP_GUARD, Reflector } from '@nestjs/core';
import {
  ThrottlerModule,
  type ThrottlerModuleOptions,
  type ThrottlerStorage,
} from '@nestjs/throttler';
import type { FastifyRequest } from 'fastify';
import type { AuthenticatedUser } from '../auth/authenticated-user.js';
import { STRICT_RATE_LIMIT_KEY } from '../common/http/rate-limit.js';
import { AppConfig } from '../config/config.js';
import { Metrics } from '../metrics/metrics.js';
import {
  CLIENT,
  ClientRateLimitGuard,
  LOGIN,
  USER,
  UserRateLimitGuard,
} from './rate-limit.guards.js';
import { clientTracker } from './client-tracker.js';
import { MemoryThrottlerStorage } from './memory-throttler-storage.js';
import { RedisThrottlerStorage } from './redis-throttler-storage.js';

const MINUTE_MS = 60_000;

type Request = FastifyRequest & { user?: AuthenticatedUser };

const STORAGE = Symbol('RateLimitStorage');

/** The counters, in Redis or in this process, as a provider so that Nest closes them on shutdown. */
@Module({
  providers: [
    {
      provide: STORAGE,
      inject: [AppConfig, Metrics],
      useFactory: (config: AppConfig, metrics: Metrics): ThrottlerStorage =>
        config.redisUrl
          ? new RedisThrottlerStorage(config.redisUrl, metrics.registry)
          : new MemoryThrottlerStorage(),
    },
  ],
  exports: [STORAGE],
})
class RateLimitStorageModule {}

/**
 * Rate limits with @nestjs/throttler: per client address (request.ip, which honours
 * X-Forwarded-For only from TRUSTED_PROXIES; an IPv6 address counts by its /64), much stricter on login and MFA, and per user.
 * Counters live in Redis when REDIS_URL is set, else in this process.
 *
 * main.ts loads this module with a dynamic import: @nestjs/throttler is a CommonJS package that
 * require()s NestJS's ES modules, which Node 20 does but Jest's module loader cannot. The limits
 * are therefore tested against the built service (test/e2e/rate-limit-tls.e2e-spec.ts).
 */
@Module({})
export class RateLimitModule {
  /** The throttler configuration and the guard that runs before authentication. */
  static forClients(): DynamicModule {
    return {
      module: RateLimitModule,
      imports: [
        ThrottlerModule.forRootAsync({
          imports: [RateLimitStorageModule],
          inject: [AppConfig, Reflector, STORAGE],
          useFactory: (
            config: AppConfig,
            reflector: Reflector,
            storage: ThrottlerStorage,
          ): ThrottlerModuleOptions => ({
            throttlers: [
              { name: CLIENT, ttl: MINUTE_MS, limit: config.rateLimitPerMinute },
              {
                name: LOGIN,
                ttl: MINUTE_MS,
                limit: config.loginRateLimitPerMinute,
                skipIf: (context) =>
                  !reflector.get<boolean>(STRICT_RATE_LIMIT_KEY, context.getHandler()),
              },
              {
                name: USER,
                ttl: MINUTE_MS,
                limit: config.rateLimitPerMinute,
                skipIf: (context) => !context.switchToHttp().getRequest<Request>().user,
                getTracker: (request) => (request as Request).user!.id,
              },
            ],
            // One bucket per tracker across all routes, not one per route (the library default).
            generateKey: (_context, tracker, name) => `${name}:${tracker}`,
            // request.ip, IPv6 grouped by /64: a tracker of our own replaces the library's, and
            // with it the grouping that keeps a client from rotating addresses within its /64.
            getTracker: (request) => clientTracker((request as Request).ip),
            // The guards answer 429 with a plain Retry-After themselves; the library's headers
            // (Retry-After-login, X-RateLimit-*-client) name each throttler and are not ours.
            setHeaders: false,
            storage,
          }),
        }),
      ],
      providers: [{ provide: APP_GUARD, useClass: ClientRateLimitGuard }],
    };
  }

  /** The guard that runs after authentication (imported after AuthModule). */
  static forUsers(): DynamicModule {
    return {
      module: UserRateLimitModule,
      providers: [{ provide: APP_GUARD, useClass: UserRateLimitGuard }],
    };
  }
}

@Module({})
class UserRateLimitModule {}
