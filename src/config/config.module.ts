import { DynamicModule, Global, Module } from '@nestjs/common';
import { ConfigModule } from '@nestjs/config';
import { ANY_SCHEMA, AppConfig, loadEnvFile, PROCESS_ROLE, type ProcessRole } from './config.js';
import { validateEnv } from './env.schema.js';

@Global()
@Module({})
export class AppConfigModule {
  /**
   * Validation runs here, when the application is assembled, rather than at import time, so a
   * bad value surfaces as one rejected promise the entry point can print as a single line.
   */
  static async register(
    role: ProcessRole = 'service',
    options: { anySchema?: boolean } = {},
  ): Promise<DynamicModule> {
    loadEnvFile();
    const config = await ConfigModule.forRoot({
      // .env is already in process.env (loadEnvFile), for code that runs before Nest too.
      ignoreEnvFile: true,
      validate: validateEnv,
      // Only what validateEnv returned: Nest's fallback to process.env read an empty variable
      // (`HL7_PROCESSING_IDS=` from docker-compose's `${…:-}`) that validation had dropped as
      // unset, so its default did not apply, and every message was refused (AR 202).
      skipProcessEnv: true,
      cache: true,
    });
    return {
      module: AppConfigModule,
      imports: [config],
      providers: [
        AppConfig,
        { provide: PROCESS_ROLE, useValue: role },
        { provide: ANY_SCHEMA, useValue: options.anySchema ?? false },
      ],
      exports: [AppConfig],
    };
  }
}
