import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataSource } from 'typeorm';
import { createDataSource } from '../../src/database/database-options.js';
import { MIGRATIONS } from '../../migrations/index.js';
import { BUILT, childEnv, runNode } from '../support/process.js';
import { createScratchDatabase, type ScratchDatabase } from '../support/scratch-database.js';

async function tables(dataSource: DataSource): Promise<string[]> {
  const rows: { table_name: string }[] = await dataSource.query(
    `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name`,
  );
  return rows.map((row) => row.table_name);
}

describe('migrations', () => {
  let database: ScratchDatabase;
  let dataSource: DataSource;

  beforeAll(async () => {
    database = await createScratchDatabase(false);
    dataSource = await createDataSource(database.url).initialize();
  });

  afterAll(async () => {
    await dataSource.destroy();
    await database.drop();
  });

  it('go up, down to zero and up again', async () => {
    expect(await dataSource.runMigrations()).toHaveLength(MIGRATIONS.length);
    expect(await tables(dataSource)).toEqual(
      expect.arrayContaining(['resource', 'resource_history']),
    );
    for (let i = 0; i < MIGRATIONS.length; i++) {
      await dataSource.undoLastMigration();
    }
    expect(await tables(dataSource)).toEqual(['migrations']);
    expect(await dataSource.runMigrations()).toHaveLength(MIGRATIONS.length);
    expect(await dataSource.showMigrations()).toBe(false);
  });

  it('run one at a time when two instances apply them together', async () => {
    // Two instances started at once with MIGRATIONS_RUN=true both read the same pending list:
    // the second failed on what the first had created, or applied a migration again.
    const other = await createDataSource(database.url).initialize();
    try {
      await dataSource.runMigrations();
      for (let i = 0; i < 3; i++) {
        await dataSource.undoLastMigration();
      }
      const runs = await Promise.allSettled([dataSource.runMigrations(), other.runMigrations()]);
      expect(runs.map((run) => (run.status === 'rejected' ? String(run.reason) : 'ok'))).toEqual([
        'ok',
        'ok',
      ]);
      const applied = runs.flatMap((run) => (run.status === 'fulfilled' ? run.value : []));
      expect(applied.map((migration) => migration.name).sort()).toEqual(
        MIGRATIONS.slice(-3)
          .map((migration) => migration.name)
          .sort(),
      );
      const twice: unknown[] = await dataSource.query(
        `SELECT "name" FROM "migrations" GROUP BY "name" HAVING count(*) > 1`,
      );
      expect(twice).toEqual([]);
    } finally {
      await other.destroy();
    }
  });

  it('run from the TypeORM CLI through npm run migration:* (revert, show, run)', async () => {
    const env = childEnv({
      DATABASE_URL: database.url,
      PHI_MASTER_KEY: Buffer.alloc(32, 7).toString('base64'),
    });
    const reverted = await runNode(BUILT.withDatabase, ['migration:revert'], env);
    expect(reverted.code).toBe(0);
    const shown = await runNode(BUILT.withDatabase, ['migration:show'], env);
    // migration:revert undoes the newest migration only.
    expect(shown.stdout).toContain(`[ ] ${MIGRATIONS.at(-1)!.name}`);
    expect(shown.stdout).toMatch(new RegExp(`\\[X\\] \\d+ ${MIGRATIONS[0]!.name}`));
    // As docker-compose's migrate job runs it: production, its lines JSON for the log pipeline
    // (Nest's coloured text until 2026-12-06).
    const run = await runNode(BUILT.withDatabase, ['migration:run'], {
      ...env,
      NODE_ENV: 'production',
    });
    expect(run.code).toBe(0);
    const lines = run.stdout.trim().split('\n');
    expect(lines.length).toBeGreaterThan(0);
    for (const line of lines) {
      expect(JSON.parse(line)).toMatchObject({ context: 'Database', message: expect.any(String) });
    }
    const after = await runNode(BUILT.withDatabase, ['migration:show'], env);
    expect(after.stdout).toContain('[X]');
  });

  it('match the entities: migration:generate finds nothing to change', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'carevault-drift-'));
    try {
      const generated = await runNode(
        BUILT.withDatabase,
        ['migration:generate', join(dir, 'drift')],
        childEnv({ DATABASE_URL: database.url }),
      );
      expect(generated.stdout + generated.stderr).toContain(
        'No changes in database schema were found',
      );
      expect(await readdir(dir)).toEqual([]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
