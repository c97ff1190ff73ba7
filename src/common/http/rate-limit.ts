import { SetMetadata } from '@nestjs/common';

export const STRICT_RATE_LIMIT_KEY = 'carevault:strict-rate-limit';

/**
 * Password and MFA routes: limited per client address far more tightly than the rest of the API
 * (LOGIN_RATE_LIMIT_PER_MINUTE), on top of the per-account lockout.
 */
export const StrictRateLimit = (): MethodDecorator => SetMetadata(STRICT_RATE_LIMIT_KEY, true);
