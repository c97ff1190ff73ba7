import { SetMetadata } from '@nestjs/common';

export const STRICT_RATE_LIMIT_KEY = 'carevault:strict-rate-limit';

/**
 * Password and MFA routes: limited per client address far more tightly than the rest of the API
 * (LOGIN_RATE_LIMIT_PER_MINUTE), on top of the per-account lockout.
 */
export const StrictRateLimit = (): MethodDecorator => SetMetadata(STRICT_RATE_LIMIT_KEY, true);

export const NO_RATE_LIMIT_KEY = 'carevault:no-rate-limit';

/**
 * Health probes: no rate limit counts them. An orchestrator probes every instance from one
 * address, and a 429 (or a limiter that fails) would have it restart an instance that works.
 */
export const NoRateLimit = (): ClassDecorator & MethodDecorator =>
  SetMetadata(NO_RATE_LIMIT_KEY, true);
