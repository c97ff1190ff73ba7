import 'reflect-metadata';
import { CommandFactory } from 'nest-commander';
import { CliModule } from './cli/cli.module.js';
import { ConfigError } from './config/env.schema.js';
import { KeyConfigError } from './crypto/key-store.js';

/** `npm run cli -- <command>`: admin commands on the Nest application context. */
async function main(): Promise<void> {
  await CommandFactory.run(await CliModule.register(), {
    logger: ['error', 'warn'],
    errorHandler: (error: Error & { code?: string; exitCode?: number }) => {
      // Commander reports --help and --version as errors with exit code 0.
      if (error.exitCode !== 0) {
        console.error(error.message);
      }
      process.exitCode = error.exitCode ?? 1;
    },
    // A command that fails says why in one line and exits non-zero, for scripts that call it.
    serviceErrorHandler: (error: Error) => {
      console.error(error.message);
      process.exitCode = 1;
    },
  });
}

main().catch((error: unknown) => {
  console.error(
    error instanceof ConfigError || error instanceof KeyConfigError ? error.message : error,
  );
  process.exit(1);
});
