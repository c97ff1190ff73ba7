import 'reflect-metadata';
import { CommandFactory } from 'nest-commander';
import { CliModule } from './cli/cli.module.js';
import { cliRunOptions } from './cli/cli-options.js';
import { ConfigError } from './config/env.schema.js';
import { KeyConfigError } from './crypto/key-store.js';
import { KEY_SETUP_COMMANDS, runKeySetup } from './crypto/key-setup.js';

/**
 * A reader that stops early (`… | head`) closes stdout: the rest of the output goes nowhere and
 * the command finishes its work. Unhandled, the EPIPE killed the process midway, e.g. through a
 * reprocess backlog, with a stack trace.
 */
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code !== 'EPIPE') throw error;
});

/** `npm run cli -- <command>`: admin commands on the Nest application context. */
async function main(): Promise<void> {
  const [command, ...args] = process.argv.slice(2);
  if (command && KEY_SETUP_COMMANDS.has(command)) {
    await runKeySetup(command, args);
    return;
  }
  await CommandFactory.run(await CliModule.register(), cliRunOptions(command));
}

main().catch((error: unknown) => {
  console.error(
    error instanceof ConfigError || error instanceof KeyConfigError ? error.message : error,
  );
  process.exit(1);
});
