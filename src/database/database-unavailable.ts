/**
 * Failures that mean PostgreSQL cannot serve right now, as opposed to a bug or a bad request:
 * the server is down, restarting or unreachable, refuses writes (read-only, a standby, a full
 * disk), or has no connection slot left. They become a 503 that says so, which a client or
 * load balancer may retry, rather than a 500 that reads like a defect.
 */
export type DatabaseProblem = 'unavailable' | 'read-only' | 'disk-full';

/** SQLSTATEs (https://www.postgresql.org/docs/current/errcodes-appendix.html) and what they mean. */
const SQLSTATES: Record<string, DatabaseProblem> = {
  '25006': 'read-only', // read_only_sql_transaction: default_transaction_read_only, a standby
  '53100': 'disk-full',
  '53200': 'unavailable', // out_of_memory
  '53300': 'unavailable', // too_many_connections
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

/** node-postgres reports a lost or unobtainable connection with these messages and no code. */
const DRIVER_MESSAGES = [
  /^Connection terminated/,
  /^timeout exceeded when trying to connect$/,
  /^Client has encountered a connection error and is not queryable$/,
  /^Client was closed and is not queryable$/,
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
    if (typeof message === 'string' && DRIVER_MESSAGES.some((pattern) => pattern.test(message))) {
      return 'unavailable';
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
};
