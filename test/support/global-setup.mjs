// Plain JavaScript on purpose: Jest loads global setup through its CommonJS path, which cannot
// import our TypeScript ES modules. It uses the build that `npm test` makes first (pretest).
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createDataSource } from '../../dist/src/database/database-options.js';
import { EmbeddedPostgres } from '../../dist/src/database/embedded-postgres.js';

/**
 * The PostgreSQL the tests use: DATABASE_URL when set (CI points it at the machine's server),
 * otherwise an embedded server in a temporary directory. Workers inherit the environment set here.
 */
export default async function globalSetup() {
  // Where test apps keep what they generate (the JWT signing key), apart from the repository.
  const scratch = await mkdtemp(join(tmpdir(), 'carevault-test-data-'));
  process.env.DATA_DIR = scratch;
  globalThis.__carevaultTestScratch = scratch;
  let url = process.env.DATABASE_URL;
  if (!url) {
    const dataDir = await mkdtemp(join(tmpdir(), 'carevault-test-'));
    const server = new EmbeddedPostgres(dataDir);
    url = await server.start();
    globalThis.__carevaultStopTestDatabase = async () => {
      await server.stop();
      await rm(dataDir, { recursive: true, force: true });
    };
  }
  await migrateUpDownUp(url);
  process.env.DATABASE_URL = url;
  process.env.NODE_ENV = 'test';
  process.env.LOG_LEVEL ??= 'silent';
  // In-process test apps take any free MLLP port, never the fixed default.
  process.env.HL7_MLLP_PORT = '0';
  process.env.PHI_MASTER_KEY = randomBytes(32).toString('base64');
  delete process.env.PHI_KEY_FILE;
}

/** Applies every migration, reverts them all, and applies them again: a broken down() fails here. */
async function migrateUpDownUp(url) {
  const dataSource = await createDataSource(url).initialize();
  try {
    await dataSource.runMigrations({ transaction: 'each' });
    while ((await dataSource.query('SELECT 1 FROM migrations LIMIT 1')).length > 0) {
      await dataSource.undoLastMigration({ transaction: 'each' });
    }
    await dataSource.runMigrations({ transaction: 'each' });
  } finally {
    await dataSource.destroy();
  }
}
