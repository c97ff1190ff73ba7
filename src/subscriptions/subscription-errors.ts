import type { OwnerRevocation } from './subscription.repository.js';

// What the notifier writes in `Subscription.error` as it sets one to `error` (R4: "a record of
// the last error"), each saying how to start it again, and why a send failed. None quotes a URL
// or a header value: a credential may sit in either.

/** What was disabled, of a Subscription's owner. */
const DISABLED: Record<OwnerRevocation, string> = {
  account: 'The account that wrote it',
  app: 'The SMART app it was written with',
  'backend-client': 'The backend client it was written with',
};

export function deliveryFailedError(attempts: number, last: string | null): string {
  return `Notifications failed ${attempts} times (last: ${last ?? 'unknown'}); set status to requested to start again`;
}

export function ownerDisabledError(revocation: OwnerRevocation): string {
  return `${DISABLED[revocation]} was disabled; set status to requested to start it again (whoever does becomes its owner)`;
}

export function repeatedHeaderError(name: string): string {
  return `Not sent: channel.header names ${name} more than once (stored before that was refused), which would go as one header of both values; give each header once and set status to requested to start again`;
}

export function refusedError(reason: string): string {
  return `Not sent: ${reason}; correct it and set status to requested to start again`;
}

/**
 * Why a request failed, as fetch reports it in `cause`: its code (ECONNREFUSED), else its
 * message (a refused redirect is "unexpected redirect"), without any URL query (a token may sit
 * there). Never fetch's own message, which may quote a header value (a credential).
 */
export function failureOf(error: unknown): string {
  const cause = (error as { cause?: { code?: unknown; message?: unknown } }).cause;
  if (typeof cause?.code === 'string') return cause.code;
  if (typeof cause?.message === 'string' && cause.message !== '') {
    return cause.message.replace(/\?\S*/g, '').slice(0, 200);
  }
  return (error as Error).name;
}
