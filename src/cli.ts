import 'reflect-metadata';
import { failureReport, runCommand } from './cli/run-command.js';

/**
 * A reader that stops early (`… | head`) closes stdout, or stderr too (`2>&1 | head`, where
 * progress goes): the rest of the output goes nowhere and the command finishes its work.
 * Unhandled, the EPIPE killed the process midway, e.g. through a reprocess backlog or a
 * reindex (stderr's until 2026-12-06), with a stack trace.
 */
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE') throw error;
  });
}

/** `npm run cli -- <command>`: admin commands on the Nest application context. */
runCommand(process.argv.slice(2)).catch((error: unknown) => {
  console.error(failureReport(error));
  process.exit(1);
});
