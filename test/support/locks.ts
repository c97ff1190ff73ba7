import type { DataSource } from 'typeorm';

/**
 * Resolves once a session of this database waits for a lock, running a statement like
 * `queryLike` (a LIKE pattern): how a test knows the interleaving it set up has happened.
 * Fails, naming `what`, after ten seconds.
 */
export async function untilWaitingForLock(
  data: DataSource,
  what: string,
  queryLike = '%',
): Promise<void> {
  for (let waited = 0; waited <= 10_000; waited += 50) {
    const [lock] = await data.query<{ waiting: number }[]>(
      `SELECT count(*)::int AS waiting FROM pg_stat_activity
        WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE $1`,
      [queryLike],
    );
    if (lock!.waiting > 0) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`${what} never waited for a lock`);
}
