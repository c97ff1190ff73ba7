import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { Command, CommandRunner, Option } from 'nest-commander';
import { AuditTrail } from '../audit/audit-trail.js';
import { renderHtml } from './compliance-report.js';
import { ComplianceService } from './compliance.service.js';

interface ReportOptions {
  out?: string;
}

@Command({
  name: 'compliance:report',
  description:
    'Check each HIPAA technical safeguard (164.312) against this configuration and database; print it, write JSON and HTML; exit 1 if any check fails (a warning does not)',
})
export class ComplianceReportCommand extends CommandRunner {
  constructor(
    private readonly compliance: ComplianceService,
    private readonly trail: AuditTrail,
  ) {
    super();
  }

  async run(_params: string[], options: ReportOptions): Promise<void> {
    const report = await this.trail.command(
      'compliance:report',
      (made) => ({
        outcome: made.summary.fail === 0 ? 'success' : 'failure',
        detail: `pass=${made.summary.pass} warn=${made.summary.warn} fail=${made.summary.fail}`,
      }),
      () => this.compliance.report(),
    );
    for (const check of report.checks) {
      process.stdout.write(
        `${check.status.toUpperCase()}  ${check.safeguard.padEnd(20)} ${check.title}: ${check.evidence}\n`,
      );
    }
    const directory = resolve(options.out ?? 'compliance-reports');
    await mkdir(directory, { recursive: true });
    const name = `compliance-${report.generatedAt.replace(/[:.]/g, '-')}`;
    await writeFile(join(directory, `${name}.json`), JSON.stringify(report, null, 2) + '\n');
    await writeFile(join(directory, `${name}.html`), renderHtml(report));
    process.stdout.write(
      `${report.summary.pass} pass, ${report.summary.warn} warn, ${report.summary.fail} fail; written to ${join(directory, name)}.json and .html\n`,
    );
    if (report.summary.fail > 0) {
      process.exitCode = 1;
    }
  }

  @Option({
    flags: '--out <directory>',
    description: 'Where the JSON and HTML go (default ./compliance-reports)',
  })
  parseOut(value: string): string {
    return value;
  }
}
