import { Presets, SingleBar } from 'cli-progress';
import { Command, CommandRunner } from 'nest-commander';
import { AuditTrail } from '../../audit/audit-trail.js';
import { BlindIndexRoot } from '../../crypto/blind-index-root.js';
import { ReindexService } from './reindex.service.js';

@Command({
  name: 'search:reindex',
  description: 'Rebuild the search index of every resource (after an upgrade or a key change)',
})
export class SearchReindexCommand extends CommandRunner {
  constructor(
    private readonly reindex: ReindexService,
    private readonly trail: AuditTrail,
    private readonly root: BlindIndexRoot,
  ) {
    super();
  }

  async run(): Promise<void> {
    // Run with another root, it would rebuild every index under it: the service's refusal.
    await this.root.verify();
    const started = Date.now();
    // A progress bar on stderr (stdout is the result), as audit:verify and keys:rotate draw
    // theirs: redrawn in place on a terminal, a line every 2 s otherwise (a log, a pipe). Until
    // 2026-12-06 it was written with `\r` alone, one run-on line when not on a terminal.
    const bar = new SingleBar(
      {
        format: 'search:reindex [{bar}] {value}/{total} resources | {eta_formatted} left',
        hideCursor: true,
        noTTYOutput: true,
        stream: process.stderr,
      },
      Presets.shades_classic,
    );
    const total = await this.trail.command(
      'search:reindex',
      (count) => ({ detail: `resources=${count}` }),
      async () => {
        bar.start(await this.reindex.countAll(), 0);
        try {
          return await this.reindex.reindexAll((done) => {
            // Resources created since the count was taken are indexed too.
            if (done > bar.getTotal()) bar.setTotal(done);
            bar.update(done);
          });
        } finally {
          bar.stop();
        }
      },
    );
    const seconds = (Date.now() - started) / 1000;
    process.stdout.write(`Reindexed ${total} resources in ${seconds.toFixed(1)} s\n`);
  }
}
