import { ConsoleLogger, Logger } from '@nestjs/common';
import { readEnv } from '../config/config.js';
import { createDataSource } from './database-options.js';

/**
 * The DataSource the TypeORM CLI loads. Run it through `npm run migration:*`, which provides
 * DATABASE_URL (starting the embedded PostgreSQL when none is configured).
 */
// Migrations never read or write PHI, so they need no PHI key.
const env = readEnv({ requireKeys: false });
const url = env.DATABASE_URL;
// In production (docker-compose's migrate job) the lines go to the log pipeline the service's
// JSON goes to: JSON too, without colour codes, where they were Nest's coloured text.
if (env.NODE_ENV === 'production') {
  Logger.overrideLogger(new ConsoleLogger({ json: true, colors: false }));
}
if (!url) {
  throw new Error(
    'DATABASE_URL is not set: run migrations with npm run migration:run (or :revert, :show, :generate)',
  );
}

export const dataSource = createDataSource(url);
