import { Module } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { PassportModule } from '@nestjs/passport';
import { AdminUsersController } from './admin-users.controller.js';
import { AuthController } from './auth.controller.js';
import { AuthService } from './auth.service.js';
import { JwtAuthGuard } from './jwt-auth.guard.js';
import { JwtStrategy } from './jwt.strategy.js';
import { OidcVerifier } from './oidc-verifier.js';
import { PermissionGuard } from './permission.guard.js';
import { RefreshTokenRepository } from './refresh-token.repository.js';
import { RefreshTokens } from './refresh-tokens.js';
import { SigningKeys } from './signing-keys.js';
import { TokenService } from './token.service.js';
import { UserRepository } from './user.repository.js';
import { UsersService } from './users.service.js';

/** Users, sign-in, tokens, and the global guards: authentication first, then the permission matrix. */
@Module({
  imports: [PassportModule],
  controllers: [AuthController, AdminUsersController],
  providers: [
    AuthService,
    UsersService,
    UserRepository,
    RefreshTokenRepository,
    RefreshTokens,
    SigningKeys,
    TokenService,
    JwtStrategy,
    OidcVerifier,
    { provide: APP_GUARD, useClass: JwtAuthGuard },
    { provide: APP_GUARD, useClass: PermissionGuard },
  ],
  exports: [UsersService],
})
export class AuthModule {}
