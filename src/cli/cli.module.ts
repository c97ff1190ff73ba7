import { DynamicModule, Module } from '@nestjs/common';
import { AppConfigModule } from '../config/config.module.js';
import { CryptoModule } from '../crypto/crypto.module.js';
import { KeysRotateCommand, KeysStatusCommand } from '../crypto/keys.command.js';
import { DatabaseModule } from '../database/database.module.js';

/** The admin CLI's application context: the same modules as the service, without HTTP. */
@Module({})
export class CliModule {
  static async register(): Promise<DynamicModule> {
    return {
      module: CliModule,
      imports: [await AppConfigModule.register(), DatabaseModule, CryptoModule],
      providers: [KeysRotateCommand, KeysStatusCommand],
    };
  }
}
