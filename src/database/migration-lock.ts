import type { QueryRunner } from 'typeorm';

/** The session advisory lock ('cvMG') that every migration run and revert holds. */
export const MIGRATION_LOCK = 0x63764d47;

/**
 * Runs `work` holding the migration lock on `runner`'s connection. TypeORM takes no lock of its
 * own: two instances started together with MIGRATIONS_RUN=true (or a migration job beside one)
 * read the same pending list, and the second failed on what the first had just created and
 * stopped, or applied a migration a second time and recorded it twice. The one that waits
 * reads the list once the other is done, and finds nothing left to apply.
 */
export async function withMigrationLock<T>(
  runner: QueryRunner,
  work: () => Promise<T>,
): Promise<T> {
  await runner.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
  try {
    return await work();
  } finally {
    await runner.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]);
  }
}
