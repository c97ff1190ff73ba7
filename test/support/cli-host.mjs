// A built admin CLI that stays up to run several commands, each as dist/src/cli.js runs one:
// the same CLI module, commander setup and error handlers, with exactly the environment and
// arguments sent, its own application context, and its stdout, stderr and exit code sent back.
// Starting node and loading the application from dist/ is most of what a CLI run costs; a test
// file sends its command runs here (test/support/cli.ts) and keeps runs of the binary itself for
// the process's own behaviour. Started with fork(); one command at a time.
import { format } from 'node:util';

const dist = new URL('../../dist/src/', import.meta.url);
const { failureReport, runCommand } = await import(new URL('cli/run-command.js', dist).href);

class Exited extends Error {
  constructor(code) {
    super(`process.exit(${code})`);
    this.code = code;
  }
}

const own = {
  exit: process.exit,
  stdout: process.stdout.write,
  stderr: process.stderr.write,
  consoleError: console.error,
  argv: process.argv,
};

function replaceEnv(values) {
  for (const key of Object.keys(process.env)) delete process.env[key];
  Object.assign(process.env, values);
}

async function run({ args, env }) {
  let stdout = '';
  let stderr = '';
  const capture =
    (append) =>
    (chunk, ...rest) => {
      append(typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString());
      rest.find((item) => typeof item === 'function')?.();
      return true;
    };
  replaceEnv(env);
  process.argv = [own.argv[0], 'cli.js', ...args];
  process.exitCode = undefined;
  process.exit = (code) => {
    throw new Exited(Number(code ?? 0));
  };
  process.stdout.write = capture((text) => (stdout += text));
  process.stderr.write = capture((text) => (stderr += text));
  console.error = (...values) => void (stderr += `${format(...values)}\n`);
  let code;
  try {
    await runCommand(args);
    code = Number(process.exitCode ?? 0);
  } catch (error) {
    if (error instanceof Exited) {
      code = error.code;
    } else {
      // As cli.ts's catch says it.
      stderr += `${format(failureReport(error))}\n`;
      code = 1;
    }
  } finally {
    process.argv = own.argv;
    process.exitCode = undefined;
    process.exit = own.exit;
    process.stdout.write = own.stdout;
    process.stderr.write = own.stderr;
    console.error = own.consoleError;
  }
  return { code, stdout, stderr };
}

let queue = Promise.resolve();
process.on('message', (request) => {
  queue = queue.then(async () => process.send({ id: request.id, ...(await run(request)) }));
});
// A Jest worker killed before its afterAll leaves no host behind.
process.on('disconnect', () => process.exit(0));
process.send({ ready: true });
