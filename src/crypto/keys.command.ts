import { SingleBar, Presets } from 'cli-progress';
import { Command, CommandRunner, Option } from 'nest-commander';
import { AuditTrail } from '../audit/audit-trail.js';
import { BlindIndexRoot } from './blind-index-root.js';
import { KeyRing } from './key-ring.js';
import { KeyRotationService } from './key-rotation.service.js';
import { KeyStore } from './key-store.js';

interface RotateOptions {
  resume?: boolean;
}

@Command({
  name: 'keys:rotate',
  description:
    'Add a new PHI master key, make it current, and re-encrypt every PHI value under it (--resume: re-encrypt only)',
})
export class KeysRotateCommand extends CommandRunner {
  constructor(
    private readonly store: KeyStore,
    private readonly ring: KeyRing,
    private readonly rotation: KeyRotationService,
    private readonly trail: AuditTrail,
  ) {
    super();
  }

  run(_params: string[], options: RotateOptions): Promise<void> {
    return this.trail.command(
      'keys:rotate',
      { detail: options.resume ? 'resume' : 'new key' },
      () => this.rotate(options),
    );
  }

  private async rotate(options: RotateOptions): Promise<void> {
    if (!options.resume) {
      const id = await this.store.addCurrentKey(this.ring);
      process.stdout.write(`Key ${id} is now current\n`);
    }
    const bar = new SingleBar(
      {
        format: '{table} [{bar}] {value}/{total} rows | {eta_formatted} left',
        hideCursor: true,
        noTTYOutput: true,
      },
      Presets.shades_classic,
    );
    let table = '';
    const rewritten = await this.rotation.reencryptAll((progress) => {
      if (progress.total === 0) {
        return;
      }
      if (progress.table !== table) {
        bar.stop();
        table = progress.table;
        bar.start(progress.total, progress.done, { table });
      }
      bar.setTotal(progress.total);
      bar.update(progress.done, { table });
    });
    bar.stop();
    process.stdout.write(`Re-encrypted ${rewritten} rows under key ${this.ring.currentId}\n`);
  }

  @Option({
    flags: '--resume',
    description: 'Do not add a key; finish re-encrypting under the current key',
  })
  parseResume(): boolean {
    return true;
  }
}

@Command({
  name: 'keys:status',
  description:
    'Show the current PHI key, the blind-index root (never retired) and how many values each key protects',
})
export class KeysStatusCommand extends CommandRunner {
  constructor(
    private readonly ring: KeyRing,
    private readonly rotation: KeyRotationService,
    private readonly trail: AuditTrail,
    private readonly root: BlindIndexRoot,
  ) {
    super();
  }

  async run(): Promise<void> {
    const usage = await this.trail.command('keys:status', {}, () => this.rotation.usage());
    const root = await this.root.status();
    process.stdout.write(`current key: ${this.ring.currentId}\n`);
    process.stdout.write(
      `blind-index root: ${root.keyId} (cannot be retired: every search index, HL7 resend hash ` +
        'and conditional-write lock is keyed by it)\n',
    );
    if (!root.matches && root.recorded) {
      process.stdout.write(
        `blind-index root differs: the database's is ${root.recorded.keyId}; the service refuses ` +
          'to start with this key ring\n',
      );
    }
    for (const row of usage) {
      process.stdout.write(`${row.table}.${row.column}\t${row.keyId}\t${row.rows}\n`);
    }
  }
}
