import { resolve } from 'node:path';
import { Command, CommandRunner, Option } from 'nest-commander';
import { printReport } from '../audit/audit.command.js';
import { AuditTrail } from '../audit/audit-trail.js';
import { cliAuditEntry } from '../audit/cli-audit.js';
import { AppConfig } from '../config/config.js';
import { BackupService } from './backup.service.js';
import type { TableEnd } from './backup-format.js';
import type { Hl7InFlight } from './backup.repository.js';

const progress = (table: string, rows: number): void => {
  process.stderr.write(`${table}: ${rows} rows\n`);
};

function totalRows(tables: TableEnd[]): number {
  return tables.reduce((sum, table) => sum + table.rows, 0);
}

/**
 * A backup is taken while messages flow: an inbound message stored but not yet processed is
 * restored `received`, and its sender, which may have had its AA from the lost database since,
 * will not send it again; an outbound one not yet delivered is sent by the restored service,
 * again if it was delivered after the backup. Both are said, with what to do.
 */
function printHl7InFlight({ received, pending }: Hl7InFlight): void {
  if (received > 0) {
    process.stdout.write(
      `HL7 inbound: ${received} message(s) stored but not yet processed when the backup was taken: ` +
        'run hl7:reprocess --status received (their senders may have had their ACK since, and will not send them again)\n',
    );
  }
  if (pending.length > 0) {
    const total = pending.reduce((sum, { count }) => sum + count, 0);
    const where = pending.map(({ destination, count }) => `${destination}: ${count}`).join(', ');
    process.stdout.write(
      `HL7 outbound: ${total} message(s) not yet delivered (${where}): the service sends them when it ` +
        'starts with HL7_OUTBOUND naming their destination, under their original control ids (MSH-10); ' +
        'those delivered after the backup arrive a second time\n',
    );
  }
}

@Command({
  name: 'backup',
  arguments: '<file>',
  description:
    'Write a consistent, encrypted (age, to BACKUP_RECIPIENT) backup of the database, and <file>.manifest.json beside it',
})
export class BackupCommand extends CommandRunner {
  constructor(
    private readonly backups: BackupService,
    private readonly trail: AuditTrail,
  ) {
    super();
  }

  async run([file]: string[]): Promise<void> {
    const manifest = await this.trail.command(
      'backup',
      (made) => ({
        detail: `file=${resolve(file!)} rows=${totalRows(made.tables)} audit_seq=${made.header.audit.seq}`,
      }),
      () => this.backups.backup(file!, progress),
    );
    process.stdout.write(
      `Backup written: ${file} (${manifest.bytes} bytes, sha256 ${manifest.sha256}), ` +
        `${manifest.tables.length} tables, ${totalRows(manifest.tables)} rows, audit chain through row ${manifest.header.audit.seq}\n`,
    );
  }
}

@Command({
  name: 'restore',
  arguments: '<file>',
  description:
    'Restore a backup into an empty database (BACKUP_IDENTITY_FILE decrypts it), then verify row counts and the audit chain',
})
export class RestoreCommand extends CommandRunner {
  constructor(
    private readonly backups: BackupService,
    private readonly trail: AuditTrail,
    private readonly config: AppConfig,
  ) {
    super();
  }

  async run([file]: string[], options: { unsigned?: boolean }): Promise<void> {
    const { header, tables, upgrades, signedBy, hl7 } = await this.backups.restore(
      file!,
      progress,
      {
        acceptUnsigned: options.unsigned === true,
      },
    );
    process.stdout.write(
      `Restored ${tables.length} tables, ${totalRows(tables)} rows, from the backup of ${header.createdAt}; every count matches\n`,
    );
    if (upgrades.length > 0) {
      process.stdout.write(
        `Upgraded from the backup's schema with ${upgrades.length} migration(s): ${upgrades.join(', ')}\n`,
      );
    }
    printHl7InFlight(hl7);
    const { report, laterCheckpoints } = await this.backups.verifyRestoredChain(header);
    printReport(report);
    if (laterCheckpoints > 0) {
      process.stderr.write(
        `warning: ${laterCheckpoints} signed checkpoint(s) in AUDIT_CHECKPOINT_FILE cover rows after this backup ` +
          `(row ${header.audit.seq}): those rows were not restored. audit:verify will report them until that file ` +
          'is moved aside; keep it as evidence of what the restore rolled back\n',
      );
    }
    // A copy beside the database it came from (a monthly restore test) continues the same
    // chain: what it signs into that database's checkpoint file reads there as a rewrite.
    process.stderr.write(
      `note: this database continues audit chain ${header.audit.chainId}, whose checkpoints go to ` +
        `${this.config.auditCheckpointFile}: a copy kept beside the database it came from needs ` +
        "its own AUDIT_CHECKPOINT_FILE (and DATA_DIR) before it runs, or that database's " +
        'audit:verify will report its chain rewritten\n',
    );
    // Recorded after the check, so that the restore is the first row after the backup's. A
    // restore that fails records nothing: a row would make the database non-empty, and the
    // next attempt would be refused.
    await this.trail.record(
      cliAuditEntry('restore', {
        outcome: report.ok ? 'success' : 'failure',
        detail:
          `backup_created=${header.createdAt} rows=${totalRows(tables)} audit_seq=${header.audit.seq} ` +
          `signed_by=${signedBy ?? 'unsigned'}`,
      }),
    );
  }

  @Option({
    flags: '--unsigned',
    description:
      'Accept a backup that carries no signature (made before CareVault signed backups); know where it comes from',
  })
  parseUnsigned(): boolean {
    return true;
  }
}
