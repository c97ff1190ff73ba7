import { Presets, SingleBar } from 'cli-progress';
import { generateKeyPairSync } from 'node:crypto';
import { join } from 'node:path';
import { Command, CommandRunner, Option } from 'nest-commander';
import { parseIsoDateOrInstant } from '../common/iso-dates.js';
import { rotateSigningKey } from '../common/key-files.js';
import { AppConfig } from '../config/config.js';
import { isValidId } from '../fhir/fhir-types.js';
import { AuditCheckpoints } from './audit-checkpoints.js';
import { AuditEventService } from './audit-event.service.js';
import { AuditExport } from './audit-export.js';
import { AuditSigner } from './audit-signer.js';
import { AuditVerifier, type VerifyReport } from './audit-verifier.js';
import { AuditTrail } from './audit-trail.js';

/** Runs longer than this many rows show a progress bar (on stderr: stdout is the result). */
const PROGRESS_FROM_ROWS = 20_000;

function parseDate(flag: string, value: string): Date {
  const date = parseIsoDateOrInstant(value);
  if (!date) {
    throw new Error(
      `${flag} must be a date (2026-11-01, UTC) or an instant with its offset (2026-11-01T10:00:00-05:00)`,
    );
  }
  return date;
}

function progressBar(total: number): { update(done: number): void; stop(): void } {
  if (total < PROGRESS_FROM_ROWS) {
    return { update: () => undefined, stop: () => undefined };
  }
  const bar = new SingleBar(
    {
      format: 'audit:verify [{bar}] {value}/{total} rows | {eta_formatted} left',
      hideCursor: true,
      noTTYOutput: true,
      stream: process.stderr,
    },
    Presets.shades_classic,
  );
  bar.start(total, 0);
  return { update: (done) => bar.update(done), stop: () => bar.stop() };
}

/** What an audit:verify row says: what was walked and whether it held, never the problem text. */
function verifyAudit(
  what: 'database' | 'export',
  report: VerifyReport,
): { outcome: 'success' | 'failure'; detail: string } {
  return report.ok
    ? { outcome: 'success', detail: `${what} rows ${report.firstSeq}..${report.lastSeq}: verified` }
    : { outcome: 'failure', detail: `${what}: broken` };
}

export function printReport(report: VerifyReport): void {
  for (const warning of report.warnings) process.stderr.write(`warning: ${warning}\n`);
  if (report.ok) {
    process.stdout.write(
      `Audit chain verified: ${report.rows} rows (${report.firstSeq}..${report.lastSeq}), ${report.checkpoints} signed checkpoint(s)\n`,
    );
  } else {
    process.stdout.write(`Audit chain BROKEN: ${report.problem}\n`);
    process.exitCode = 1;
  }
}

@Command({
  name: 'audit:verify',
  description:
    'Walk the whole audit chain: contiguity, hashes, signed checkpoints (database and AUDIT_CHECKPOINT_FILE); exit 1 naming the first bad row',
})
export class AuditVerifyCommand extends CommandRunner {
  constructor(
    private readonly verifier: AuditVerifier,
    private readonly exports: AuditExport,
    private readonly trail: AuditTrail,
  ) {
    super();
  }

  async run(
    _params: string[],
    options: { file?: string; acceptUnsealed?: boolean },
  ): Promise<void> {
    const file = options.file;
    const acceptUnsealed = options.acceptUnsealed === true;
    // Walking the trail reads who touched which patient, as an export does: the run is a row,
    // recorded before the result is printed. A broken chain is its failure (exit 1).
    const report = await this.trail.command(
      'audit:verify',
      (done) => verifyAudit(file ? 'export' : 'database', done),
      () =>
        file ? this.exports.verifyFile(file, undefined, { acceptUnsealed }) : this.verifyDatabase(),
    );
    printReport(report);
  }

  private async verifyDatabase(): Promise<VerifyReport> {
    const source = await this.verifier.databaseSource();
    const bar = progressBar(source.total);
    const report = await this.verifier.verify(source, (done) => bar.update(done));
    bar.stop();
    return report;
  }

  @Option({ flags: '--file <path>', description: 'Verify an export made by audit:export' })
  parseFile(value: string): string {
    return value;
  }

  @Option({
    flags: '--accept-unsealed',
    description:
      'With --file: verify an export written before exports were sealed (2026-12-06), starting at row 1; its range is not vouched for',
  })
  parseAcceptUnsealed(): boolean {
    return true;
  }
}

@Command({
  name: 'audit:checkpoint',
  description:
    'Sign the current chain head now (the service also does every AUDIT_CHECKPOINT_MINUTES)',
})
export class AuditCheckpointCommand extends CommandRunner {
  constructor(private readonly checkpoints: AuditCheckpoints) {
    super();
  }

  async run(): Promise<void> {
    const checkpoint = await this.checkpoints.checkpointHead();
    process.stdout.write(
      checkpoint ? `Checkpoint at row ${checkpoint.chainSeq}\n` : 'The audit chain is empty\n',
    );
  }
}

@Command({
  name: 'audit:patient-report',
  arguments: '<patientId>',
  description:
    "Accounting of disclosures: everyone who touched a patient's records (tab-separated)",
})
export class AuditPatientReportCommand extends CommandRunner {
  constructor(
    private readonly events: AuditEventService,
    private readonly trail: AuditTrail,
  ) {
    super();
  }

  async run([patientId]: string[]): Promise<void> {
    if (!patientId || !isValidId(patientId)) {
      throw new Error('Give a Patient id');
    }
    // Reading a patient's trail is itself an access to that patient's record. An id that names
    // no Patient ever stored may be an MRN typed in its place: the row keeps only the type.
    const stored = await this.events.wasPatientStored(patientId);
    const entries = await this.trail.command(
      'audit:patient-report',
      stored
        ? { resourceType: 'Patient', resourceId: patientId, patientIds: [patientId] }
        : { resourceType: 'Patient' },
      () => this.events.patientEntries(patientId),
    );
    process.stdout.write(
      'recorded_at\tuser\troles\taction\tresource\toutcome\tstatus\tsource_ip\tbreak_glass\n',
    );
    for (const entry of entries) {
      const resource = entry.resourceType
        ? `${entry.resourceType}${entry.resourceId ? `/${entry.resourceId}` : ''}`
        : '';
      process.stdout.write(
        [
          entry.recordedAt.toISOString(),
          entry.actorName ?? entry.actorUserId ?? '',
          entry.actorRoles.join(','),
          entry.subtype ? `${entry.action}:${entry.subtype}` : entry.action,
          resource,
          entry.outcome,
          entry.statusCode ?? '',
          entry.sourceIp ?? '',
          entry.breakGlass ? 'yes' : '',
        ].join('\t') + '\n',
      );
    }
    process.stderr.write(`${entries.length} event(s) touched Patient/${patientId}\n`);
  }
}

@Command({
  name: 'audit:export',
  description:
    'Export the chain rows recorded in a date range as JSON lines, sealed by a signed statement of its range',
})
export class AuditExportCommand extends CommandRunner {
  constructor(
    private readonly exports: AuditExport,
    private readonly trail: AuditTrail,
  ) {
    super();
  }

  async run(_params: string[], options: { out?: string; from?: Date; to?: Date }): Promise<void> {
    if (!options.out) throw new Error('--out <file> is required');
    const out = options.out;
    const summary = await this.trail.command(
      'audit:export',
      (done) => ({ detail: `rows ${done.firstSeq}..${done.lastSeq}` }),
      () => this.exports.exportRange(out, options.from, options.to),
    );
    process.stdout.write(
      `Exported ${summary.rows} rows (${summary.firstSeq}..${summary.lastSeq}) to ${options.out}\n`,
    );
  }

  @Option({ flags: '--out <file>', description: 'File to create (must not exist)' })
  parseOut(value: string): string {
    return value;
  }

  @Option({ flags: '--from <date>', description: 'First day (inclusive, ISO)' })
  parseFrom(value: string): Date {
    return parseDate('--from', value);
  }

  @Option({ flags: '--to <date>', description: 'End (exclusive, ISO)' })
  parseTo(value: string): Date {
    return parseDate('--to', value);
  }
}

@Command({
  name: 'audit:archive',
  description:
    'Export, seal and then remove rows older than AUDIT_RETENTION_DAYS (the only way rows leave the trail)',
})
export class AuditArchiveCommand extends CommandRunner {
  constructor(
    private readonly exports: AuditExport,
    private readonly trail: AuditTrail,
  ) {
    super();
  }

  async run(_params: string[], options: { out?: string; before?: Date }): Promise<void> {
    if (!options.out) throw new Error('--out <file> is required');
    const out = options.out;
    const summary = await this.trail.command(
      'audit:archive',
      (done) => ({ detail: `removed ${done.removed} rows through ${done.lastSeq}` }),
      () => this.exports.archive(out, options.before),
    );
    process.stdout.write(
      summary.removed > 0
        ? `Archived rows ${summary.firstSeq}..${summary.lastSeq} to ${options.out} and removed ${summary.removed}\n`
        : 'No rows older than the retention period\n',
    );
  }

  @Option({ flags: '--out <file>', description: 'Export file to create (must not exist)' })
  parseOut(value: string): string {
    return value;
  }

  @Option({
    flags: '--before <date>',
    description: 'Archive rows recorded before this time (default: now minus the retention period)',
  })
  parseBefore(value: string): Date {
    return parseDate('--before', value);
  }
}

@Command({
  name: 'audit:rotate-key',
  description:
    'New Ed25519 audit signing key; the old public key joins the trusted keys (its checkpoints keep verifying), and the head is signed with the new key',
})
export class AuditRotateKeyCommand extends CommandRunner {
  constructor(
    private readonly signer: AuditSigner,
    private readonly checkpoints: AuditCheckpoints,
    private readonly trail: AuditTrail,
    private readonly config: AppConfig,
  ) {
    super();
  }

  async run(): Promise<void> {
    const retiredId = this.signer.keyId;
    const rotated = await this.trail.command(
      'audit:rotate-key',
      (done) => ({ detail: `retired=${retiredId} current=${done.keyId}` }),
      async () => {
        await rotateSigningKey({
          privateKeyFile:
            this.config.auditSigningKeyFile ?? join(this.config.dataDir, 'audit-signing-key.pem'),
          acceptedKeysFile: this.signer.trustedKeysFile,
          generate: () => generateKeyPairSync('ed25519').privateKey,
          // Never expires: checkpoints it signed must verify for as long as the rows are kept.
          note: `audit signing key ${retiredId}, retired ${new Date().toISOString()}`,
        });
        await this.signer.reload();
        return { keyId: this.signer.keyId, checkpoint: await this.checkpoints.checkpointHead() };
      },
    );
    process.stdout.write(
      `New audit signing key ${rotated.keyId}; ${retiredId} is trusted in ${this.signer.trustedKeysFile}` +
        (rotated.checkpoint
          ? `; row ${rotated.checkpoint.chainSeq} signed with the new key\n`
          : '\n'),
    );
  }
}
