import { fileURLToPath } from 'node:url';
import { childEnv, runNode } from '../support/process.js';

/**
 * The benchmark's baseline (bench/baseline/, issue 7) must do CareVault's database work for
 * each workload: the same statements, rows and audit row. It drifted unseen while only
 * `npm run bench:check-baseline` compared them (22 differences by 2026-12-07), so the suite
 * runs that check: the built check.js, as the npm script does, on a PostgreSQL of its own
 * (pg_stat_statements must be preloaded, which takes a server restart). One request per
 * workload after one warm-up round.
 */
const CHECK = fileURLToPath(new URL('../../dist/bench/baseline/check.js', import.meta.url));

describe('benchmark baseline', () => {
  it('runs the same statements as CareVault and writes the same rows and audit rows', async () => {
    // check.js makes (and removes) a data directory of its own, with its own PHI key.
    const run = await runNode(CHECK, [], childEnv({}), { timeoutMs: 240_000 });
    // Each differing line, and the two audit rows when they differ.
    const differences = run.stdout
      .split('\n')
      .filter((line) => line.includes('<-- differs') || /^ {2}(CareVault|baseline): /.test(line));
    expect({ differences, stderr: run.stderr }).toEqual({ differences: [], stderr: '' });
    expect(run.stdout).toContain('Same database work.');
    expect(run.code).toBe(0);
  }, 300_000);
});
