import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { childEnv, dataDirOf, readEnv } from '../config/config.js';
import { ConfigError } from '../config/env.schema.js';
import { EmbeddedPostgres } from './embedded-postgres.js';

/**
 * Runs a TypeORM CLI command (migration:run, :revert, :show, :generate) against the configured
 * PostgreSQL, or against the embedded one, which it starts for the command and stops after.
 * Usage: node dist/src/database/with-database.js <typeorm command> [args...]
 */
async function main(): Promise<number> {
  const [command, ...args] = process.argv.slice(2);
  if (!command?.startsWith('migration:')) {
    console.error(
      'usage: with-database.js migration:run|migration:revert|migration:show|migration:generate [args]',
    );
    return 2;
  }
  const env = readEnv({ requireKeys: false });
  const embedded = env.DATABASE_URL ? undefined : new EmbeddedPostgres(dataDirOf(env));
  const url = env.DATABASE_URL ?? (await embedded!.start());
  try {
    const cli = createRequire(import.meta.url).resolve('typeorm/cli.js');
    const dataSource = fileURLToPath(new URL('./data-source.js', import.meta.url));
    const generated = command === 'migration:generate' ? ['--pretty'] : [];
    return await run(
      process.execPath,
      [cli, command, ...args, ...generated, '-d', dataSource],
      url,
    );
  } finally {
    await embedded?.stop();
  }
}

function run(executable: string, args: string[], databaseUrl: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(executable, args, {
      stdio: 'inherit',
      env: childEnv({ DATABASE_URL: databaseUrl }),
    });
    child.once('error', reject);
    child.once('exit', (code) => resolve(code ?? 1));
  });
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error instanceof ConfigError ? error.message : error);
    process.exit(1);
  },
);
