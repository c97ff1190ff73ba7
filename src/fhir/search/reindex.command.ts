import { Command, CommandRunner } from 'nest-commander';
import { AuditTrail } from '../../audit/audit-trail.js';
import { ReindexService } from './reindex.service.js';

@Command({
  name: 'search:reindex',
  description: 'Rebuild the search index of every resource (after an upgrade or a key change)',
})
export class SearchReindexCommand extends CommandRunner {
  constructor(
    private readonly reindex: ReindexService,
    private readonly trail: AuditTrail,
  ) {
    super();
  }

  async run(): Promise<void> {
    const started = Date.now();
    const total = await this.trail.command(
      'search:reindex',
      (count) => ({ detail: `resources=${count}` }),
      () =>
        this.reindex.reindexAll((done) => {
          process.stderr.write(`\rIndexed ${done} resources`);
        }),
    );
    process.stderr.write('\n');
    const seconds = (Date.now() - started) / 1000;
    process.stdout.write(`Reindexed ${total} resources in ${seconds.toFixed(1)} s\n`);
  }
}
