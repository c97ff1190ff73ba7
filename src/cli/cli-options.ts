import type { LoggerService } from '@nestjs/common';
import type { CommandFactory } from 'nest-commander';
import { KEY_SETUP_HELP } from '../crypto/key-setup.js';

/**
 * Warnings and errors go to stderr: stdout is the commands' output (tab-separated tables that
 * scripts read), which a log line must never break.
 */
export const stderrLogger: LoggerService = {
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
 * How the CLI runs a Nest command (`command` is the first argument), shared with the tests that
 * run commands in-process so that they parse and fail as the binary does.
 */
export function cliRunOptions(
  command: string | undefined,
): Parameters<typeof CommandFactory.run>[1] {
  return {
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
  };
}
