import { Module } from '@nestjs/common';
import { CryptoModule } from '../crypto/crypto.module.js';
import { BackupKeys } from './backup-keys.js';
import { BackupRepository } from './backup.repository.js';
import { BackupService } from './backup.service.js';

/** Encrypted backups and verified restores, for the admin CLI. */
@Module({
  imports: [CryptoModule],
  providers: [BackupRepository, BackupKeys, BackupService],
  exports: [BackupService],
})
export class BackupModule {}
