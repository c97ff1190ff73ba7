import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { createDataSource } from '../../src/database/database-options.js';
import { withEnv } from './env.js';
import { createTestApp, type TestApp } from './test-app.js';

export interface ScratchDatabase {
  url: string;
  drop(): Promise<void>;
}

/**
 * A database of its own on the test server, for tests that must not share rows with the others
 * (another key ring, migrations run down to zero). Migrated unless `migrate` is false: a copy of
 * the template that global setup migrated once (CAREVAULT_TEST_TEMPLATE_DATABASE), which takes a
 * fraction of the time running the migrations again takes; without one, migrated here.
 */
export async function createScratchDatabase(migrate = true): Promise<ScratchDatabase> {
  const serverUrl = process.env['DATABASE_URL'];
  if (!serverUrl) {
    throw new Error('DATABASE_URL is set by the global test setup');
  }
  const name = `carevault_scratch_${randomBytes(6).toString('hex')}`;
  const template = migrate ? process.env['CAREVAULT_TEST_TEMPLATE_DATABASE'] : undefined;
  await adminQuery(
    serverUrl,
    template ? `CREATE DATABASE ${name} TEMPLATE "${template}"` : `CREATE DATABASE ${name}`,
  );
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  if (template) {
    // The one value a migration draws at random: each database's audit chain is its own, so
    // that a checkpoint of another one's cannot vouch for it (create-audit-trail migration).
    await adminQuery(url.toString(), 'UPDATE audit_chain_head SET chain_id = gen_random_uuid()');
  } else if (migrate) {
    const dataSource = await createDataSource(url.toString()).initialize();
    await dataSource.runMigrations({ transaction: 'each' });
    await dataSource.destroy();
  }
  return {
    url: url.toString(),
    drop: () => adminQuery(serverUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`),
  };
}

async function adminQuery(url: string, sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

/**
 * A test app on a scratch database of its own: DATABASE_URL names it, and `env` holds, until
 * `close`.
 */
export async function appOnScratchDatabase(env: Record<string, string> = {}): Promise<{
  database: ScratchDatabase;
  testApp: TestApp;
  close: () => Promise<void>;
}> {
  const database = await createScratchDatabase();
  const restoreEnv = withEnv({ ...env, DATABASE_URL: database.url });
  const testApp = await createTestApp();
  return {
    database,
    testApp,
    close: async () => {
      await testApp.close();
      restoreEnv();
      await database.drop();
    },
  };
}
