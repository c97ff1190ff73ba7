import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';

/** Paths in the build that `npm test` makes first (pretest). */
export const BUILT = {
  main: fileURLToPath(new URL('../../dist/src/main.js', import.meta.url)),
  cli: fileURLToPath(new URL('../../dist/src/cli.js', import.meta.url)),
  withDatabase: fileURLToPath(new URL('../../dist/src/database/with-database.js', import.meta.url)),
};

/**
 * The environment of a child process: this one's PATH and HOME, plus exactly what is given. A
 * service started by a test takes any free MLLP port, never the fixed default.
 */
export function childEnv(values: Record<string, string>): Record<string, string> {
  return {
    PATH: process.env['PATH'] ?? '',
    HOME: process.env['HOME'] ?? '',
    HL7_MLLP_PORT: '0',
    ...values,
  };
}

/**
 * The environment of a built service (or CLI) on a database of its own: its data directory and
 * its own PHI key, any free port, logs at info (tests read the ports from them).
 */
export function serviceEnv(
  databaseUrl: string,
  dataDir: string,
  extra: Record<string, string> = {},
): Record<string, string> {
  return childEnv({
    DATABASE_URL: databaseUrl,
    DATA_DIR: dataDir,
    PORT: '0',
    LOG_LEVEL: 'info',
    PHI_MASTER_KEY: randomBytes(32).toString('base64'),
    ...extra,
  });
}

export interface Finished {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a built entry point to completion. */
export function runNode(
  script: string,
  args: string[],
  env: Record<string, string>,
  options: {
    stdin?: string;
    timeoutMs?: number;
    closeStdout?: boolean;
    closeStderr?: boolean;
  } = {},
): Promise<Finished> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script, ...args], {
      env,
      stdio: [options.stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    if (options.stdin !== undefined) child.stdin!.end(options.stdin);
    // A reader gone before the output comes, as `| head` is once it has its lines.
    if (options.closeStdout) child.stdout!.destroy();
    if (options.closeStderr) child.stderr!.destroy();
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000);
    child.once('error', reject);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

export interface RunningService {
  url: string;
  child: ChildProcess;
  output: () => string;
  /** Sends the signal and waits for the process to exit. */
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts the built service and waits until it logs the address it listens on. */
export function startService(
  env: Record<string, string>,
  timeoutMs = 60_000,
): Promise<RunningService> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BUILT.main], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((done) =>
      child.once('exit', (code, signal) => done({ code, signal })),
    );
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`service did not start in time:\n${output}`));
    }, timeoutMs);
    const onData = (chunk: Buffer): void => {
      output += chunk.toString();
      const match = /Listening on (https?:\/\/[^:]+:\d+)/.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve({
          url: match[1]!,
          child,
          output: () => output,
          stop: (signal = 'SIGTERM') => {
            child.kill(signal);
            return exited;
          },
        });
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    void exited.then(({ code }) => {
      clearTimeout(timer);
      reject(new Error(`service exited with ${code} before listening:\n${output}`));
    });
  });
}

/** The MLLP port a service started with HL7_MLLP_PORT=0 took (logged at info level). */
export function mllpPortOf(service: RunningService): number {
  const match = /MLLP listener on [^"]*:(\d+)/.exec(service.output());
  if (!match) throw new Error(`no MLLP port in:\n${service.output()}`);
  return Number(match[1]);
}
