import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { createDataSource } from '../../src/database/database-options.js';

export interface ScratchDatabase {
  url: string;
  drop(): Promise<void>;
}

/**
 * A database of its own on the test server, for tests that must not share rows with the others
 * (another key ring, migrations run down to zero). Migrated unless `migrate` is false.
 */
export async function createScratchDatabase(migrate = true): Promise<ScratchDatabase> {
  const serverUrl = process.env['DATABASE_URL'];
  if (!serverUrl) {
    throw new Error('DATABASE_URL is set by the global test setup');
  }
  const name = `carevault_scratch_${randomBytes(6).toString('hex')}`;
  await adminQuery(serverUrl, `CREATE DATABASE ${name}`);
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  if (migrate) {
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
