import { QueryFailedError } from 'typeorm';

/**
 * Failures that mean PostgreSQL cannot serve right now, as opposed to a bug or a bad request:
 * the server is down, restarting or unreachable, refuses writes (read-only, a standby, a full
 * disk), or has no connection slot left; or every connection of this service's pool stayed in
 * use for the whole wait (busy: the database is up, this service has more work than
 * connections); or the transaction met a concurrent one and PostgreSQL rolled it back (conflict:
 * a deadlock, or a serialization failure), which the same request may not meet again; or a
 * lock stayed held for longer than the service waits for it (locked: only the audit trail's
 * writes set lock_timeout, AUDIT_WRITE_TIMEOUT_MS, so it is the trail that cannot write). They
 * become a 503 that says so, which a client or load balancer may retry, rather than a 500 that
 * reads like a defect.
 */
export type DatabaseProblem =
  'unavailable' | 'read-only' | 'disk-full' | 'busy' | 'conflict' | 'locked';

/** SQLSTATEs (https://www.postgresql.org/docs/current/errcodes-appendix.html) and what they mean. */
const SQLSTATES: Record<string, DatabaseProblem> = {
  '25006': 'read-only', // read_only_sql_transaction: default_transaction_read_only, a standby
  '40001': 'conflict', // serialization_failure
  '40P01': 'conflict', // deadlock_detected
  '53100': 'disk-full',
  '53200': 'unavailable', // out_of_memory
  '53300': 'unavailable', // too_many_connections
  '55P03': 'locked', // lock_not_available: lock_timeout ran out
  '57P01': 'unavailable', // admin_shutdown
  '57P02': 'unavailable', // crash_shutdown
  '57P03': 'unavailable', // cannot_connect_now: starting up or shutting down
};

/** Socket errors on the way to the server. */
const SOCKET_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
]);

/**
 * node-postgres reports a lost or unobtainable connection with these messages and no code. A
 * new connection that the server does not complete in time ends "Connection terminated due to
 * connection timeout"; pg-pool's "timeout exceeded when trying to connect" is only ever a
 * request that waited in the queue of a full pool (pg-pool's connect()).
 */
const DRIVER_MESSAGES: [RegExp, DatabaseProblem][] = [
  [/^Connection terminated/, 'unavailable'],
  [/^Client has encountered a connection error and is not queryable$/, 'unavailable'],
  [/^Client was closed and is not queryable$/, 'unavailable'],
  [/^timeout exceeded when trying to connect$/, 'busy'],
];

export function databaseProblem(error: unknown): DatabaseProblem | undefined {
  // TypeORM wraps driver errors (QueryFailedError.driverError); Node wraps some in `cause`.
  for (let current = error, depth = 0; current && depth < 4; depth++) {
    const { code, message, driverError, cause } = current as {
      code?: unknown;
      message?: unknown;
      driverError?: unknown;
      cause?: unknown;
    };
    if (typeof code === 'string') {
      if (SQLSTATES[code]) return SQLSTATES[code];
      // Class 08: connection exception.
      if (/^08[0-9A-Z]{3}$/.test(code) || SOCKET_CODES.has(code)) return 'unavailable';
    }
    if (typeof message === 'string') {
      const known = DRIVER_MESSAGES.find(([pattern]) => pattern.test(message));
      if (known) return known[1];
    }
    current = driverError ?? cause;
  }
  return undefined;
}

export const DATABASE_PROBLEM_DIAGNOSTICS: Record<DatabaseProblem, string> = {
  unavailable: 'The database is unavailable; the request was not completed. Retry later',
  'read-only':
    'The database is read-only and accepts no writes; the request was not completed. Retry later',
  'disk-full': 'The database is out of disk space; the request was not completed. Retry later',
  busy: 'The server is busy: no database connection came free in time; the request was not completed. Retry later',
  locked:
    'The audit trail could not be written in time (a lock on it is held); the request was not completed. Retry later',
  conflict:
    'The request met a concurrent one in the database (a deadlock) and was rolled back: nothing was written. Retry it',
};

/**
 * A statement PostgreSQL cancelled for running past DATABASE_STATEMENT_TIMEOUT_MS (SQLSTATE
 * 57014 says "cancelled"; an operator's pg_cancel_backend has it too, with another message).
 */
export function isStatementTimeout(error: unknown): boolean {
  for (let current = error, depth = 0; current && depth < 4; depth++) {
    const { code, message, driverError, cause } = current as {
      code?: unknown;
      message?: unknown;
      driverError?: unknown;
      cause?: unknown;
    };
    if (code === '57014') return typeof message === 'string' && /statement timeout/.test(message);
    current = driverError ?? cause;
  }
  return false;
}

/**
 * The SQLSTATE of a database error (TypeORM's QueryFailedError, the driver's own, or one that
 * wraps them), if it is one.
 */
export function sqlStateOf(error: unknown): string | undefined {
  for (let current = error, depth = 0; current && depth < 4; depth++) {
    const { code, driverError, cause } = current as {
      code?: unknown;
      driverError?: unknown;
      cause?: unknown;
    };
    // Five characters, as Node's errno codes can be too (EPIPE, EBUSY): no SQLSTATE class
    // begins with E.
    if (typeof code === 'string' && /^[0-9A-DF-Z][0-9A-Z]{4}$/.test(code)) return code;
    current = driverError ?? cause;
  }
  return undefined;
}

/**
 * A statement PostgreSQL refused for what it asked (a value it cannot read, say), as opposed to
 * the database being unable to serve: the same statement would be refused again.
 */
export function isRefusedStatement(error: unknown): boolean {
  return error instanceof QueryFailedError && databaseProblem(error) === undefined;
}
