import { MIGRATIONS } from '../../migrations/index.js';

/**
 * A backup records how many migrations its schema had, and restore rebuilds that schema from
 * the first that many of this list (src/backup), while TypeORM runs pending migrations in the
 * list's order: a migration listed before one already shipped would be left out of a restored
 * schema, or run out of order. So a new one always goes last, with the latest timestamp.
 */
describe('migrations', () => {
  it('are listed in the order of their timestamps, each later than the one before', () => {
    const timestamps = MIGRATIONS.map((migration) => Number(/\d{13}$/.exec(migration.name)?.[0]));
    expect(timestamps.every((stamp) => Number.isSafeInteger(stamp) && stamp > 0)).toBe(true);
    expect(timestamps).toEqual([...timestamps].sort((a, b) => a - b));
    expect(new Set(timestamps).size).toBe(timestamps.length);
  });
});
