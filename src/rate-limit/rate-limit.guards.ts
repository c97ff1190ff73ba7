import { ExecutionContext, Injectable } from '@nestjs/common';
import { ThrottlerGuard, type ThrottlerLimitDetail } from '@nestjs/throttler';
import type { FastifyReply } from 'fastify';
import { AppError } from '../common/errors/app-error.js';
import { NO_RATE_LIMIT_KEY } from '../common/http/rate-limit.js';

/** Throttler names, each counted in its own bucket. */
export const CLIENT = 'client';
export const LOGIN = 'login';
export const USER = 'user';

/**
 * ThrottlerGuard limited to some of the configured throttlers, answering 429 as an
 * OperationOutcome with a plain Retry-After. The library's own headers, which carry the
 * throttler's name (Retry-After-login), are off (setHeaders: false in RateLimitModule).
 */
abstract class ScopedThrottlerGuard extends ThrottlerGuard {
  protected abstract readonly scope: readonly string[];

  override async onModuleInit(): Promise<void> {
    await super.onModuleInit();
    this.throttlers = this.throttlers.filter((throttler) => this.scope.includes(throttler.name!));
  }

  protected override shouldSkip(context: ExecutionContext): Promise<boolean> {
    const skip = this.reflector.getAllAndOverride<boolean | undefined>(NO_RATE_LIMIT_KEY, [
      context.getHandler(),
      context.getClass(),
    ]);
    return Promise.resolve(skip === true);
  }

  protected override throwThrottlingException(
    context: ExecutionContext,
    detail: ThrottlerLimitDetail,
  ): Promise<void> {
    const reply = context.switchToHttp().getResponse<FastifyReply>();
    void reply.header('retry-after', String(Math.max(1, Math.ceil(detail.timeToBlockExpire))));
    throw AppError.of(429, 'throttled', 'Too many requests; retry after the Retry-After delay');
  }
}

/** Runs before authentication: every request counts against its client address. */
@Injectable()
export class ClientRateLimitGuard extends ScopedThrottlerGuard {
  protected readonly scope = [CLIENT, LOGIN];
}

/** Runs after authentication: every authenticated request counts against its user. */
@Injectable()
export class UserRateLimitGuard extends ScopedThrottlerGuard {
  protected readonly scope = [USER];
}
