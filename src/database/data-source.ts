import { readEnv } from '../config/config.js';
import { createDataSource } from './database-options.js';

/**
 * The DataSource the TypeORM CLI loads. Run it through `npm run migration:*`, which provides
 * DATABASE_URL (starting the embedded PostgreSQL when none is configured).
 */
// Migrations never read or write PHI, so they need no PHI key.
const url = readEnv({ requireKeys: false }).DATABASE_URL;
if (!url) {
  throw new Error(
    'DATABASE_URL is not set: run migrations with npm run migration:run (or :revert, :show, :generate)',
  );
}

export const dataSource = createDataSource(url);
