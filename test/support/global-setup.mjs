// Plain JavaScript on purpose: Jest loads global setup through its CommonJS path, which cannot
// import our TypeScript ES modules. It uses the build that `npm test` makes first (pretest).
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { createDataSource } from '../../dist/src/database/database-options.js';
import { EmbeddedPostgres } from '../../dist/src/database/embedded-postgres.js';

/**
 * The PostgreSQL the tests use: DATABASE_URL when set (CI points it at the machine's server),
 * otherwise an embedded server in a temporary directory. Workers inherit the environment set here.
 */
export default async function globalSetup(globalConfig) {
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
  // The scratch template is a database of its own, migrated from empty: it is built while the
  // test database goes up, down and up again (each is mostly PostgreSQL's work and round trips).
  const [template] = await Promise.all([createScratchTemplate(url), migrateUpDownUp(url)]);
  globalThis.__carevaultWorkerDatabases = await createWorkerDatabases(url, globalConfig.maxWorkers);
  globalThis.__carevaultWorkerDatabases.names.push(template);
  process.env.CAREVAULT_TEST_TEMPLATE_DATABASE = template;
  process.env.DATABASE_URL = url;
  process.env.NODE_ENV = 'test';
  process.env.LOG_LEVEL ??= 'silent';
  // In-process test apps take any free MLLP port, never the fixed default.
  process.env.HL7_MLLP_PORT = '0';
  process.env.PHI_MASTER_KEY = randomBytes(32).toString('base64');
  // In-process apps hash passwords at 1 MiB and 1 pass instead of 64 MiB and 3: the suite signs
  // in hundreds of accounts, and at 0.4 s a hash here that was a fifth of its time. The tests
  // that hang on a check's cost (security-attacks) take an app at production cost; processes the
  // tests start (test/support/process.ts) get their environment whole, without this.
  process.env.PASSWORD_HASH_TEST_FAST = 'true';
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

/**
 * A copy of the migrated database for each Jest worker (test/support/worker-setup.ts points the
 * worker at it): files that run at the same time never see each other's rows, and within a worker
 * files run one after another on one database, as they would in a single process.
 */
async function createWorkerDatabases(url, workers) {
  const base = new URL(url).pathname.slice(1);
  const names = Array.from({ length: workers }, (_, i) => `${base}_w${i + 1}`);
  await adminQuery(url, async (client) => {
    for (const name of names) {
      await client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      await client.query(`CREATE DATABASE "${name}" TEMPLATE "${base}"`);
    }
  });
  return { url, names };
}

/**
 * A database migrated once from empty, as a scratch database would be, that nothing connects to:
 * createScratchDatabase (test/support/scratch-database.ts) copies it with CREATE DATABASE ...
 * TEMPLATE instead of running every migration again for each of the suite's twenty-odd copies.
 * Its name is recorded with the worker databases, so that global teardown drops it.
 */
async function createScratchTemplate(url) {
  const name = `${new URL(url).pathname.slice(1)}_scratch_template`;
  await adminQuery(url, async (client) => {
    await client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    await client.query(`CREATE DATABASE "${name}"`);
  });
  const template = new URL(url);
  template.pathname = `/${name}`;
  const dataSource = await createDataSource(template.toString()).initialize();
  try {
    await dataSource.runMigrations({ transaction: 'each' });
  } finally {
    await dataSource.destroy();
  }
  return name;
}

/**
 * Runs on the server's `postgres` database: a template cannot be copied while connected to.
 * (scratch-database.ts has the tests' own; this file cannot import TypeScript.)
 */
export async function adminQuery(url, run) {
  const admin = new URL(url);
  admin.pathname = '/postgres';
  const client = new pg.Client({ connectionString: admin.toString() });
  await client.connect();
  try {
    await run(client);
  } finally {
    await client.end();
  }
}
