import { Module } from '@nestjs/common';
import { RefreshTokenRepository } from './refresh-token.repository.js';
import { RefreshTokens } from './refresh-tokens.js';
import { UserRepository } from './user.repository.js';
import { UsersService } from './users.service.js';

/**
 * Accounts and their sessions, without token signing: what the admin CLI needs. Kept apart from
 * AuthModule so that a CLI command never loads (or generates) the JWT signing key.
 */
@Module({
  providers: [UsersService, UserRepository, RefreshTokenRepository, RefreshTokens],
  exports: [UsersService, UserRepository, RefreshTokens],
})
export class UsersModule {}
