import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Finished } from './process.js';

const HOST = fileURLToPath(new URL('./cli-host.mjs', import.meta.url));

export interface CliHost {
  /** Runs `cli.js <args>` with exactly `env` as its environment, as runNode(BUILT.cli) does. */
  run(args: string[], env: Record<string, string>): Promise<Finished>;
  close(): Promise<void>;
}

/**
 * One built CLI process (test/support/cli-host.mjs) for a test file's command runs: each run of
 * the binary starts node and loads the whole application from dist/, seconds of CPU. The
 * commands run through the binary's CLI module and handlers, each on an application context of
 * its own; the file keeps a run of the binary itself for exit codes, streams and parsing.
 */
export async function startCliHost(): Promise<CliHost> {
  const child: ChildProcess = fork(HOST, [], {
    env: { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? '' },
    // Pipes, as runNode gives the binary (a command may ask whether stderr is a terminal);
    // what a command writes is captured in the host, so only a crash of the host comes here.
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  child.stdout!.pipe(process.stderr);
  child.stderr!.pipe(process.stderr);
  const pending = new Map<number, (finished: Finished) => void>();
  let next = 0;
  let failed: Error | undefined;
  const ready = new Promise<void>((resolve, reject) => {
    child.on('message', (message: { ready?: boolean; id?: number } & Finished) => {
      if (message.ready) return resolve();
      pending.get(message.id!)?.({
        code: message.code,
        stdout: message.stdout,
        stderr: message.stderr,
      });
      pending.delete(message.id!);
    });
    child.once('exit', (code) => {
      failed = new Error(`The CLI host exited (${code})`);
      reject(failed);
    });
  });
  await ready;
  return {
    run: (args, env) =>
      new Promise((resolve, reject) => {
        if (failed) return reject(failed);
        const id = next++;
        pending.set(id, resolve);
        child.send({ id, args, env });
      }),
    close: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null || failed) return resolve();
        child.once('exit', () => resolve());
        child.kill();
      }),
  };
}
