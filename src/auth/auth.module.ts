import { Module } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { PassportModule } from '@nestjs/passport';
import { AccessModule } from '../access/access.module.js';
import { DatabaseModule } from '../database/database.module.js';
import { AdminUsersController } from './admin-users.controller.js';
import { AuthController } from './auth.controller.js';
import { AuthorizationCodes } from './apps/authorization-codes.js';
import { AuthService } from './auth.service.js';
import { ClientStatus } from './client-status.js';
import { ClientCredentialsGrant } from './backend-clients/client-credentials.js';
import { JwtAuthGuard } from './jwt-auth.guard.js';
import { JwtStrategy } from './jwt.strategy.js';
import { OidcVerifier } from './oidc-verifier.js';
import { PermissionGuard } from './permission.guard.js';
import { RequestIdentity } from './request-identity.js';
import { SigningKeys } from './signing-keys.js';
import { TokenIntrospection } from './token-introspection.js';
import { TokenLiveness } from './token-liveness.js';
import { TokenService } from './token.service.js';
import { UsersModule } from './users.module.js';

/** Users, sign-in, tokens, and the global guards: authentication first, then the permission matrix. */
@Module({
  imports: [AccessModule, DatabaseModule, PassportModule, UsersModule],
  controllers: [AuthController, AdminUsersController],
  providers: [
    ClientStatus,
    TokenLiveness,
    TokenIntrospection,
    AuthService,
    SigningKeys,
    TokenService,
    ClientCredentialsGrant,
    AuthorizationCodes,
    JwtStrategy,
    OidcVerifier,
    RequestIdentity,
    { provide: APP_GUARD, useClass: JwtAuthGuard },
    { provide: APP_GUARD, useClass: PermissionGuard },
  ],
  exports: [UsersModule, AuthService, AuthorizationCodes, RequestIdentity, TokenLiveness],
})
export class AuthModule {}
