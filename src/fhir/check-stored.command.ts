import { Command, CommandRunner } from 'nest-commander';
import { AuditTrail } from '../audit/audit-trail.js';
import { StoredResourceCheck } from './stored-resource-check.service.js';

@Command({
  name: 'fhir:check-stored',
  description:
    'List stored resources that the current rules refuse (type, id, element path), which a PATCH must repair before they can be updated',
})
export class FhirCheckStoredCommand extends CommandRunner {
  constructor(
    private readonly check: StoredResourceCheck,
    private readonly trail: AuditTrail,
  ) {
    super();
  }

  async run(): Promise<void> {
    let refused = 0;
    const checked = await this.trail.command(
      'fhir:check-stored',
      (count) => ({ detail: `resources=${count} refused=${refused}` }),
      () =>
        this.check.checkAll(({ type, id, paths }) => {
          refused++;
          // Tab-separated, one line a resource: the paths only, never a value (PHI).
          process.stdout.write(`${type}\t${id}\t${paths.join(',') || '-'}\n`);
        }),
    );
    process.stderr.write(`Checked ${checked} resources: ${refused} refused\n`);
    // Non-zero when any is refused, for a script or a pre-upgrade check.
    if (refused > 0) process.exitCode = 1;
  }
}
