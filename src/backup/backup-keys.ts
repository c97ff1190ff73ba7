import { Injectable, Logger } from '@nestjs/common';
import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { AppConfig } from '../config/config.js';
import { BackupError } from './backup-error.js';
import { exists } from '../common/files.js';

const DEVELOPMENT_IDENTITY = 'backup-identity.txt';

/**
 * The keys of backups, apart from the PHI keys: backups are encrypted with age (X25519) to a
 * public recipient, so the host that makes them never holds what decrypts them. The identity
 * (private key) is needed only to restore, and belongs offline or in the key custodian's hands.
 * A backup can also be read with the `age` tool: `age -d -i identity backup | gunzip`.
 */
@Injectable()
export class BackupKeys {
  private readonly logger = new Logger('BackupKeys');

  constructor(private readonly config: AppConfig) {}

  /** The recipient new backups are encrypted to. */
  async recipient(): Promise<string> {
    const configured = this.config.backupRecipient;
    if (configured) {
      return configured;
    }
    if (this.config.isProduction) {
      throw new BackupError(
        'BACKUP_RECIPIENT must be set when NODE_ENV=production (the age public key backups are encrypted to)',
      );
    }
    return identityToRecipient(await this.developmentIdentity(true));
  }

  /** The identity that decrypts backups. */
  async identity(): Promise<string> {
    const file = this.config.backupIdentityFile;
    if (file) {
      return readIdentity(file);
    }
    if (this.config.isProduction) {
      throw new BackupError('BACKUP_IDENTITY_FILE must be set to restore when NODE_ENV=production');
    }
    return this.developmentIdentity(false);
  }

  /** Outside production: an identity kept under DATA_DIR, made by the first backup. */
  private async developmentIdentity(create: boolean): Promise<string> {
    const path = join(this.config.dataDir, DEVELOPMENT_IDENTITY);
    if (await exists(path)) {
      return readIdentity(path);
    }
    if (!create) {
      throw new BackupError(
        `No backup identity: set BACKUP_IDENTITY_FILE (${path} does not exist)`,
      );
    }
    const identity = await generateX25519Identity();
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    await writeFile(path, `${identity}\n`, { mode: 0o600, flag: 'wx' });
    this.logger.warn(
      `Generated a backup identity at ${path}: copy it somewhere apart from the data and the backups, ` +
        'and set BACKUP_RECIPIENT and BACKUP_IDENTITY_FILE in production',
    );
    return identity;
  }
}

async function readIdentity(path: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    throw new BackupError(`The backup identity file ${path} cannot be read`);
  }
  // age identity files may hold comments (# created: ...) before the key.
  const key = text
    .split('\n')
    .map((line) => line.trim())
    .find((line) => line.startsWith('AGE-SECRET-KEY-1'));
  if (!key) {
    throw new BackupError(`${path} holds no age identity (AGE-SECRET-KEY-1...)`);
  }
  return key;
}
