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

  async run(_params: string[], options: RotateOptions): Promise<void> {
    const { left } = await this.trail.command(
      'keys:rotate',
      (done: { rewritten: number; left: number }) => ({
        detail: `${options.resume ? 'resume' : 'new key'} rewritten=${done.rewritten} left=${done.left}`,
      }),
      () => this.rotate(options),
    );
    // Not an error of the command, but not done either: a script that retires the old key once
    // keys:rotate succeeds must not go on.
    if (left > 0) process.exitCode = 1;
  }

  private async rotate(options: RotateOptions): Promise<{ rewritten: number; left: number }> {
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
    const current = this.ring.currentId;
    process.stdout.write(`Re-encrypted ${rewritten} rows under key ${current}\n`);
    // Another instance still writing with an old key (it has not met the new one yet, or was
    // not restarted with it) may have written behind the run: counted again at its end, as
    // keys:status would, so that "done" means the old keys protect nothing any more.
    const left = (await this.rotation.usage()).filter((usage) => usage.keyId !== current);
    const count = left.reduce((sum, usage) => sum + usage.rows, 0);
    if (count === 0) {
      process.stdout.write(`Rotation complete: every PHI value is under key ${current}\n`);
      return { rewritten, left: 0 };
    }
    const keys = [...new Set(left.map((usage) => usage.keyId))].join(', ');
    process.stdout.write(
      `Rotation not complete: ${count} value(s) still under key(s) ${keys}, written since by an ` +
        `instance still writing with them. Do not retire ${keys}; once every instance writes ` +
        `with ${current} (see "Key rotation" in the README), run keys:rotate --resume again\n`,
    );
    for (const usage of left) {
      process.stdout.write(`${usage.table}.${usage.column}\t${usage.keyId}\t${usage.rows}\n`);
    }
    return { rewritten, left: count };
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
