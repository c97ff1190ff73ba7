import { DataSource, type DataSourceOptions } from 'typeorm';
import { sqlStateOf } from './database-unavailable.js';

/** How often, and how far apart, the service tries to reach its database at start. */
export const CONNECT_ATTEMPTS = 10;
export const CONNECT_RETRY_MS = 3000;

/**
 * Refusals that another attempt cannot change: no such database (3D000), no such role or a
 * wrong password (28000, 28P01), no right to connect (42501). A server not up yet (refused,
 * or a name Docker's DNS does not resolve while its container is being recreated) is tried
 * again.
 */
const PERMANENT_STATES = new Set(['3D000', '28000', '28P01', '42501']);

/**
 * The database of DATABASE_URL could not be used at start: one line, naming the variable and
 * the server's reason (never the URL, which may hold a password). Until 2026-12-06 such a start
 * said nothing for 30 s, retrying a database that did not exist, then printed a stack trace.
 */
export class DatabaseConnectError extends Error {
  override readonly name = 'DatabaseConnectError';
  readonly permanent: boolean;

  constructor(readonly reason: unknown) {
    const state = sqlStateOf(reason);
    const code = (reason as { code?: unknown } | null)?.code;
    const message = reason instanceof Error ? reason.message : String(reason);
    super(
      `CareVault failed to start: the database of DATABASE_URL cannot be used: ${message}` +
        (state ? ` (SQLSTATE ${state})` : typeof code === 'string' ? ` (${code})` : ''),
    );
    this.permanent = state !== undefined && PERMANENT_STATES.has(state);
  }
}

/** Connects, its failure a DatabaseConnectError (TypeOrmModule's dataSourceFactory). */
export async function connectDataSource(options: DataSourceOptions): Promise<DataSource> {
  try {
    return await new DataSource(options).initialize();
  } catch (error) {
    throw new DatabaseConnectError(error);
  }
}

/**
 * Whether to try to connect again (TypeOrmModule's toRetry): not after a permanent refusal.
 * Each retry is said at once, on stderr as the refusals of the configuration are: the
 * application's logs are buffered until it exists, and the wait went unexplained.
 */
export function connectRetries(): (error: unknown) => boolean {
  let failed = 0;
  return (error) => {
    if (error instanceof DatabaseConnectError && error.permanent) return false;
    failed += 1;
    const reason = error instanceof DatabaseConnectError ? error.reason : error;
    const code = sqlStateOf(reason) ?? (reason as { code?: unknown } | null)?.code;
    process.stderr.write(
      `The database of DATABASE_URL is not reachable (${typeof code === 'string' ? code : 'no answer'}), ` +
        `attempt ${failed} of ${CONNECT_ATTEMPTS}` +
        (failed < CONNECT_ATTEMPTS ? `: trying again in ${CONNECT_RETRY_MS / 1000} s\n` : '\n'),
    );
    return true;
  };
}
