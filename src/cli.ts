import 'reflect-metadata';
import type { LoggerService } from '@nestjs/common';
import { CommandFactory } from 'nest-commander';
import { CliModule } from './cli/cli.module.js';
import { ConfigError } from './config/env.schema.js';
import { KeyConfigError } from './crypto/key-store.js';
import { KEY_SETUP_COMMANDS, KEY_SETUP_HELP, runKeySetup } from './crypto/key-setup.js';

/**
 * Warnings and errors go to stderr: stdout is the commands' output (tab-separated tables that
 * scripts read), which a log line must never break.
 */
const stderrLogger: LoggerService = {
  log: () => undefined,
  warn: (message: unknown, context?: string) => writeLog('WARN', message, context),
  error: (message: unknown, ...rest: unknown[]) =>
    writeLog(
      'ERROR',
      message,
      typeof rest.at(-1) === 'string' ? (rest.at(-1) as string) : undefined,
    ),
};

function writeLog(level: string, message: unknown, context?: string): void {
  // An error that stops the context from starting (a key that does not unwrap) arrives as
  // the Error itself, whose message JSON.stringify would drop.
  const text =
    typeof message === 'string'
      ? message
      : message instanceof Error
        ? message.message
        : JSON.stringify(message);
  process.stderr.write(`${level}${context ? ` [${context}]` : ''} ${text}\n`);
}

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
  await CommandFactory.run(await CliModule.register(), {
    logger: stderrLogger,
    errorHandler: (error: Error & { code?: string; exitCode?: number }) => {
      // Commander has already written its message (an unknown command or option, or the help,
      // which it reports as an error with exit code 0): printing it again would say it twice.
      // It exits right after this handler, so the commands run outside it are listed here.
      if (error.code === 'commander.helpDisplayed' && (command === '--help' || command === '-h')) {
        process.stdout.write(KEY_SETUP_HELP);
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
