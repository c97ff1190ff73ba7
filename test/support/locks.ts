import type { DataSource, QueryRunner } from 'typeorm';

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

/**
 * Makes the test's own session (in `runner`'s open transaction) the one PostgreSQL does not
 * end when it closes a deadlock. Each waiter checks for a deadlock once, deadlock_timeout after
 * it began to wait, and the one whose check finds the cycle is rolled back: with the service's
 * sessions at the default second and this one at a minute, the service's check comes first as
 * long as this session begins waiting within that second. Timing alone (asking a few hundred
 * ms after the service began waiting) was not enough on a loaded machine. The setting needs a
 * superuser, as the embedded server's and CI's are; elsewhere timing is all there is.
 */
export async function neverTheDeadlockVictim(runner: QueryRunner): Promise<void> {
  const [role] = (await runner.query("SELECT current_setting('is_superuser') AS superuser")) as {
    superuser: string;
  }[];
  if (role!.superuser === 'on') await runner.query("SET LOCAL deadlock_timeout = '1min'");
}
