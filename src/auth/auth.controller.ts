import { Body, Controller, Get, HttpCode, Post, Req } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import type { FastifyRequest } from 'fastify';
import type { AuthenticatedUser } from './authenticated-user.js';
import { AuthService } from './auth.service.js';
import {
  LoginDto,
  MfaCodeDto,
  MfaLoginDto,
  RefreshDto,
  ScopedTokenDto,
  type MfaRequiredResponse,
  type TokenResponse,
} from './dto.js';
import { StrictRateLimit } from '../common/http/rate-limit.js';
import { Public, RequirePermission } from './permission.decorators.js';
import { SigningKeys } from './signing-keys.js';

type AuthenticatedRequest = FastifyRequest & { user: AuthenticatedUser };

@ApiTags('Authentication')
@Controller()
export class AuthController {
  constructor(
    private readonly auth: AuthService,
    private readonly keys: SigningKeys,
  ) {}

  @Public()
  @Post('auth/login')
  @StrictRateLimit()
  @HttpCode(200)
  @ApiOperation({ summary: 'Password login: tokens, or an MFA challenge when the user has MFA' })
  login(@Body() body: LoginDto): Promise<TokenResponse | MfaRequiredResponse> {
    return this.auth.login(body.username, body.password);
  }

  @Public()
  @Post('auth/login/mfa')
  @StrictRateLimit()
  @HttpCode(200)
  @ApiOperation({ summary: 'Complete an MFA login with a TOTP code' })
  loginMfa(@Body() body: MfaLoginDto): Promise<TokenResponse> {
    return this.auth.loginMfa(body.mfa_token, body.code);
  }

  @Public()
  @Post('auth/refresh')
  @StrictRateLimit()
  @HttpCode(200)
  @ApiOperation({ summary: 'Rotate a refresh token; reusing an old one revokes the session' })
  refresh(@Body() body: RefreshDto): Promise<TokenResponse> {
    return this.auth.refresh(body.refresh_token);
  }

  @Public()
  @Post('auth/logout')
  @HttpCode(204)
  @ApiOperation({ summary: 'End the session that the refresh token belongs to' })
  async logout(@Body() body: RefreshDto): Promise<void> {
    await this.auth.logout(body.refresh_token);
  }

  @RequirePermission('account:self')
  @Post('auth/mfa/enroll')
  @HttpCode(200)
  @ApiBearerAuth()
  @ApiOperation({
    summary: 'Start TOTP enrolment: secret, otpauth:// URI and QR code (PNG data URL)',
  })
  enroll(@Req() request: AuthenticatedRequest): ReturnType<AuthService['enrollMfa']> {
    return this.auth.enrollMfa(request.user);
  }

  @RequirePermission('account:self')
  @Post('auth/mfa/activate')
  @StrictRateLimit()
  @HttpCode(200)
  @ApiBearerAuth()
  @ApiOperation({ summary: 'Turn MFA on with a first valid code' })
  activate(
    @Req() request: AuthenticatedRequest,
    @Body() body: MfaCodeDto,
  ): Promise<{ mfa_enabled: true }> {
    return this.auth.activateMfa(request.user, body.code);
  }

  @RequirePermission('account:self')
  @Post('auth/token/scoped')
  @HttpCode(200)
  @ApiBearerAuth()
  @ApiOperation({
    summary: 'Exchange your token for one narrowed to SMART scopes (and a patient in context)',
  })
  scoped(
    @Req() request: AuthenticatedRequest,
    @Body() body: ScopedTokenDto,
  ): ReturnType<AuthService['scopedToken']> {
    return this.auth.scopedToken(request.user, body.scope, body.patient);
  }

  @Public()
  @Get('.well-known/jwks.json')
  @ApiOperation({ summary: 'Public keys that verify CareVault access tokens' })
  jwks(): ReturnType<SigningKeys['jwks']> {
    return this.keys.jwks();
  }
}
