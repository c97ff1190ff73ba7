import { Module } from '@nestjs/common';
import { DatabaseModule } from '../database/database.module.js';
import { SmartAppRepository } from './apps/smart-app.repository.js';
import { SmartAppsService } from './apps/smart-apps.service.js';
import { BackendClientRepository } from './backend-clients/backend-client.repository.js';
import { BackendClientsService } from './backend-clients/backend-clients.service.js';
import { PasswordHasher } from './password.js';
import { RefreshTokenRepository } from './refresh-token.repository.js';
import { AccountStatus } from './account-status.js';
import { RefreshTokens } from './refresh-tokens.js';
import { SessionStatus } from './session-status.js';
import { UserRepository } from './user.repository.js';
import { UsersService } from './users.service.js';

/**
 * Accounts, their sessions and the backend clients acting as them and the SMART apps they sign in to, without token signing: what the admin CLI needs. Kept apart from
 * AuthModule so that a CLI command never loads (or generates) the JWT signing key.
 */
@Module({
  imports: [DatabaseModule],
  providers: [
    UsersService,
    PasswordHasher,
    UserRepository,
    RefreshTokenRepository,
    RefreshTokens,
    SessionStatus,
    AccountStatus,
    BackendClientsService,
    BackendClientRepository,
    SmartAppsService,
    SmartAppRepository,
  ],
  exports: [
    UsersService,
    PasswordHasher,
    UserRepository,
    RefreshTokenRepository,
    RefreshTokens,
    SessionStatus,
    AccountStatus,
    BackendClientsService,
    BackendClientRepository,
    SmartAppsService,
    SmartAppRepository,
  ],
})
export class UsersModule {}
