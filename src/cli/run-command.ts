import { CommandFactory } from 'nest-commander';
import { ConfigError } from '../config/env.schema.js';
import { KeyConfigError } from '../crypto/key-store.js';
import { KEY_SETUP_COMMANDS, runKeySetup } from '../crypto/key-setup.js';
import { CliModule } from './cli.module.js';
import { cliRunOptions } from './cli-options.js';

/**
 * Runs one admin command from its arguments: the key set-up commands, which need no application
 * context, or a Nest command. The binary (src/cli.ts) and the tests' CLI host
 * (test/support/cli-host.mjs) both run commands through this, so they dispatch alike.
 */
export async function runCommand(args: readonly string[]): Promise<void> {
  const [command, ...rest] = args;
  if (command && KEY_SETUP_COMMANDS.has(command)) {
    await runKeySetup(command, rest);
    return;
  }
  await CommandFactory.run(await CliModule.register(command), cliRunOptions(command));
}

/** What a command that failed outside Nest's handlers prints: a setting's words, or the error. */
export function failureReport(error: unknown): unknown {
  return error instanceof ConfigError || error instanceof KeyConfigError ? error.message : error;
}
