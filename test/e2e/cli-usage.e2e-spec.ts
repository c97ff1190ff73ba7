import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BUILT, childEnv, runNode, serviceEnv } from '../support/process.js';

describe('the CLI on usage mistakes', () => {
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'carevault-cli-usage-'));
  });

  afterAll(() => rm(dir, { recursive: true, force: true }));

  const cli = (args: string[]) =>
    runNode(BUILT.cli, args, serviceEnv(process.env['DATABASE_URL']!, dir, { LOG_LEVEL: 'warn' }));

  it.each(['keys:init', 'keys:wrap'])('%s --help prints its usage', async (command) => {
    const result = await runNode(BUILT.cli, [command, '--help'], childEnv({}));
    expect(result).toMatchObject({ code: 0, stderr: '' });
    expect(result.stdout).toMatch(new RegExp(`^Usage: cli ${command} `));
    // The first line names every option the command takes (keys:wrap's left --create-kek out).
    expect(result.stdout.split('\n', 1)[0]).toContain('[--create-kek]');
  });

  it('refuses an unknown option of keys:wrap in one line', async () => {
    const result = await runNode(BUILT.cli, ['keys:wrap', '--frm', 'x'], childEnv({}));
    expect(result.code).toBe(1);
    expect(result.stderr).toBe("error: Unknown option '--frm' (see keys:wrap --help)\n");
  });

  it('lists the key set-up commands in its --help', async () => {
    const result = await cli(['--help']);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/\n {2}user:create /);
    expect(result.stdout).toMatch(/\n {2}keys:init \[--create-kek\] /);
    expect(result.stdout).toMatch(/\n {2}keys:wrap \[--from <file>\] /);
  });

  it('finishes quietly when its stdout is closed (| head)', async () => {
    const env = serviceEnv(process.env['DATABASE_URL']!, dir, { LOG_LEVEL: 'warn' });
    const args = ['hl7:reprocess', '--status', 'rejected'];
    const result = await runNode(BUILT.cli, args, env, { closeStdout: true });
    expect(result.stderr).not.toContain('EPIPE');
    // Its own exit code: 1 while rejected messages remain, which other test files of this
    // worker's database may have stored (an unreadable frame stays rejected), else 0.
    expect(result.stderr).not.toMatch(/^\s+at /m);
    expect([0, 1]).toContain(result.code);
  });

  it('says once that a command is unknown', async () => {
    const result = await cli(['bogus:command']);
    expect(result.code).toBe(1);
    expect(result.stderr.match(/unknown command 'bogus:command'/g)).toHaveLength(1);
  });
});
