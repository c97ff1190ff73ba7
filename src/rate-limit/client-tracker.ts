// The helper itself, not the package's index: the index loads ThrottlerGuard, which require()s
// NestJS's ES modules, and Jest cannot (see RateLimitModule); this file only needs node:net.
import { normalizeIp } from '@nestjs/throttler/dist/ip.js';

/**
 * IPv6 addresses are counted per /64: one subscriber line, or one host with SLAAC privacy
 * addresses, is handed a whole /64 and can send from a new address for every attempt.
 */
const IPV6_PREFIX = 64;

/**
 * The bucket a client address counts in: an IPv4 address as itself (an IPv4-mapped IPv6
 * address, ::ffff:a.b.c.d, as that IPv4 address), an IPv6 address by its /64 prefix.
 */
export function clientTracker(ip: string): string {
  return normalizeIp(ip, IPV6_PREFIX);
}
