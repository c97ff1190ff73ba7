import { DynamicModule, Module } from '@nestjs/common';
import { AccessModule } from '../access/access.module.js';
import {
  AuditArchiveCommand,
  AuditCheckpointCommand,
  AuditExportCommand,
  AuditPatientReportCommand,
  AuditRotateKeyCommand,
  AuditVerifyCommand,
} from '../audit/audit.command.js';
import {
  ClientCreateCommand,
  ClientDisableCommand,
  ClientListCommand,
  ClientSetKeysCommand,
} from '../auth/backend-clients/backend-clients.command.js';
import {
  AppCreateCommand,
  AppDisableCommand,
  AppListCommand,
} from '../auth/apps/smart-apps.command.js';
import { JwtKeyRotateCommand } from '../auth/jwt-keys.command.js';
import { AuditModule } from '../audit/audit.module.js';
import { BackupCommand, RestoreCommand } from '../backup/backup.command.js';
import { BackupModule } from '../backup/backup.module.js';
import { ComplianceReportCommand } from '../compliance/compliance.command.js';
import { ComplianceModule } from '../compliance/compliance.module.js';
import { BreakGlassReportCommand } from '../access/break-glass.command.js';
import { UsersModule } from '../auth/users.module.js';
import { FhirModule } from '../fhir/fhir.module.js';
import { ImportCommand } from '../fhir/import/import.command.js';
import { FhirCheckStoredCommand } from '../fhir/check-stored.command.js';
import { StoredResourceCheck } from '../fhir/stored-resource-check.service.js';
import { SearchReindexCommand } from '../fhir/search/reindex.command.js';
import {
  UserCreateCommand,
  UserDisableCommand,
  UserListCommand,
  UserResetMfaCommand,
  UserSetPasswordCommand,
  UserEnableCommand,
  UserSetFhirUserCommand,
  UserSetRolesCommand,
} from '../auth/users.command.js';
import { AppConfigModule } from '../config/config.module.js';
import { CryptoModule } from '../crypto/crypto.module.js';
import { KeysRotateCommand, KeysStatusCommand } from '../crypto/keys.command.js';
import { DatabaseModule } from '../database/database.module.js';
import { Hl7CoreModule } from '../hl7/hl7-core.module.js';
import { SubscriptionsCoreModule } from '../subscriptions/subscriptions-core.module.js';
import { Hl7PurgeCommand, Hl7ReprocessCommand } from '../hl7/hl7.command.js';
import { Hl7SendCommand } from '../hl7/hl7-send.command.js';
import { MetricsModule } from '../metrics/metrics.module.js';

/**
 * The commands that work on a schema of any version: a backup before an upgrade, a restore into
 * an empty database. The others refuse one that is behind or ahead of this version (their SQL
 * fails on it, column by column), as the service does. The help, without a command, needs none.
 */
const ANY_SCHEMA_COMMANDS: ReadonlySet<string> = new Set(['backup', 'restore']);

/** The admin CLI's application context: the same modules as the service, without HTTP. */
@Module({})
export class CliModule {
  /** `command`: the first argument, which names the command to run. */
  static async register(command?: string): Promise<DynamicModule> {
    const anySchema =
      command === undefined || command.startsWith('-') || ANY_SCHEMA_COMMANDS.has(command);
    return {
      module: CliModule,
      imports: [
        await AppConfigModule.register('cli', { anySchema }),
        MetricsModule,
        DatabaseModule,
        CryptoModule,
        AuditModule,
        UsersModule,
        FhirModule,
        AccessModule,
        Hl7CoreModule,
        SubscriptionsCoreModule,
        BackupModule,
        ComplianceModule,
      ],
      providers: [
        KeysRotateCommand,
        KeysStatusCommand,
        UserCreateCommand,
        UserDisableCommand,
        UserResetMfaCommand,
        UserSetPasswordCommand,
        UserEnableCommand,
        UserSetFhirUserCommand,
        UserSetRolesCommand,
        UserListCommand,
        ClientCreateCommand,
        ClientSetKeysCommand,
        ClientDisableCommand,
        ClientListCommand,
        AppCreateCommand,
        AppDisableCommand,
        AppListCommand,
        BreakGlassReportCommand,
        SearchReindexCommand,
        FhirCheckStoredCommand,
        StoredResourceCheck,
        ImportCommand,
        AuditVerifyCommand,
        AuditCheckpointCommand,
        AuditPatientReportCommand,
        AuditExportCommand,
        AuditArchiveCommand,
        Hl7ReprocessCommand,
        Hl7PurgeCommand,
        Hl7SendCommand,
        BackupCommand,
        RestoreCommand,
        ComplianceReportCommand,
        AuditRotateKeyCommand,
        JwtKeyRotateCommand,
      ],
    };
  }
}
