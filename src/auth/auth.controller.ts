import { Body, Controller, Get, HttpCode, Post, Req, Res } from '@nestjs/common';
import {
  ApiBearerAuth,
  ApiBody,
  ApiConsumes,
  ApiOperation,
  ApiResponse,
  ApiTags,
} from '@nestjs/swagger';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { AuthenticatedUser } from './authenticated-user.js';
import { AuthorizationCodes, type AppTokenResponse } from './apps/authorization-codes.js';
import { AuthService } from './auth.service.js';
import {
  ClientCredentialsGrant,
  JWT_BEARER,
  type ClientTokenResponse,
} from './backend-clients/client-credentials.js';
import {
  ChangePasswordDto,
  LoginDto,
  MfaCodeDto,
  MfaLoginDto,
  RefreshDto,
  ScopedTokenDto,
  type MfaRequiredResponse,
  type OAuthError,
  type TokenResponse,
} from './dto.js';
import { StrictRateLimit } from '../common/http/rate-limit.js';
import { requestOrigin } from '../common/http/request-origin.js';
import { Public, RequirePermission } from './permission.decorators.js';
import { SigningKeys } from './signing-keys.js';
import { TokenIntrospection, type IntrospectionResponse } from './token-introspection.js';

type AuthenticatedRequest = FastifyRequest & { user: AuthenticatedUser };

@ApiTags('Authentication')
@Controller()
export class AuthController {
  constructor(
    private readonly auth: AuthService,
    private readonly keys: SigningKeys,
    private readonly clientCredentials: ClientCredentialsGrant,
    private readonly authorizationCodes: AuthorizationCodes,
    private readonly introspection: TokenIntrospection,
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
  // Not StrictRateLimit: a refresh token cannot be guessed, and failed logins at a shared
  // address (a hospital's NAT) would otherwise end everyone's sessions there.
  @HttpCode(200)
  @ApiOperation({ summary: 'Rotate a refresh token; reusing an old one revokes the session' })
  refresh(@Body() body: RefreshDto): Promise<TokenResponse> {
    return this.auth.refresh(body.refresh_token);
  }

  @Public()
  @Post('auth/token')
  // Not StrictRateLimit either: nothing sent here can be guessed (codes and refresh tokens are
  // 256-bit random, client assertions are signed), and SMART apps refresh here.
  @HttpCode(200)
  @ApiConsumes('application/x-www-form-urlencoded')
  @ApiBody({
    schema: {
      type: 'object',
      required: ['grant_type'],
      properties: {
        grant_type: {
          type: 'string',
          enum: ['authorization_code', 'refresh_token', 'client_credentials'],
        },
        code: { type: 'string', description: 'authorization_code grant' },
        redirect_uri: { type: 'string', description: 'authorization_code grant' },
        client_id: { type: 'string', description: 'authorization_code grant: the app' },
        code_verifier: { type: 'string', description: 'authorization_code grant: PKCE' },
        refresh_token: { type: 'string', description: 'refresh_token grant' },
        client_assertion_type: {
          type: 'string',
          enum: [JWT_BEARER],
          description: 'client_credentials grant',
        },
        client_assertion: {
          type: 'string',
          description: "client_credentials grant: a JWT signed with one of the client's keys",
        },
        scope: { type: 'string', description: 'client_credentials grant: system/ scopes' },
      },
    },
  })
  @ApiOperation({
    summary:
      'OAuth 2.0 token endpoint (RFC 6749): authorization_code with PKCE for SMART apps, refresh_token, and client_credentials with a signed client assertion for SMART backend clients',
  })
  @ApiResponse({
    status: 400,
    description: 'An OAuth error: { error, error_description } (RFC 6749 section 5.2)',
  })
  @ApiResponse({ status: 401, description: 'invalid_client: the client assertion is refused' })
  async token(
    @Body() body: unknown,
    @Req() request: FastifyRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<TokenResponse | ClientTokenResponse | AppTokenResponse | OAuthError> {
    const fields = (body !== null && typeof body === 'object' ? body : {}) as Record<
      string,
      unknown
    >;
    const grant = fields['grant_type'];
    const result =
      grant === 'client_credentials'
        ? await this.clientCredentials.token(fields, `${requestOrigin(request)}/auth/token`)
        : grant === 'authorization_code'
          ? await this.authorizationCodes.token(fields, requestOrigin(request))
          : await this.auth.oauthToken(fields);
    // RFC 6749 section 5.1: token responses are never cached.
    void reply.header('cache-control', 'no-store').header('pragma', 'no-cache');
    if ('error' in result) void reply.status(result.error === 'invalid_client' ? 401 : 400);
    return result;
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
  @Post('auth/password')
  @StrictRateLimit()
  @HttpCode(204)
  @ApiBearerAuth()
  @ApiOperation({
    summary: 'Change your password; every session of the account ends (sign in again)',
  })
  async changePassword(
    @Req() request: AuthenticatedRequest,
    @Body() body: ChangePasswordDto,
  ): Promise<void> {
    await this.auth.changePassword(request.user, body.current_password, body.new_password);
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

  /**
   * The caller authenticates with an access token of its own (SMART 2.0 lets an app or a
   * resource server call it), which keeps anonymous callers from probing token liveness; who
   * learns what is TokenIntrospection's rule.
   */
  @RequirePermission('account:self')
  @Post('auth/introspect')
  @HttpCode(200)
  @ApiBearerAuth()
  @ApiConsumes('application/x-www-form-urlencoded')
  @ApiBody({
    schema: {
      type: 'object',
      required: ['token'],
      properties: {
        token: { type: 'string', description: 'The access token to introspect' },
        token_type_hint: { type: 'string', description: 'Ignored (RFC 7662)' },
      },
    },
  })
  @ApiOperation({
    summary:
      'Token introspection (RFC 7662): whether an access token is active now, with its scope, client, subject and patient',
  })
  introspect(
    @Req() request: AuthenticatedRequest,
    @Body() body: unknown,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<IntrospectionResponse> {
    const fields = (body !== null && typeof body === 'object' ? body : {}) as Record<
      string,
      unknown
    >;
    // The answer says who a token stands for: kept out of caches like a token response.
    void reply.header('cache-control', 'no-store').header('pragma', 'no-cache');
    return this.introspection.introspect(request.user, fields['token']);
  }

  @Public()
  @Get('.well-known/jwks.json')
  @ApiOperation({ summary: 'Public keys that verify CareVault access tokens and id_tokens' })
  jwks(): ReturnType<SigningKeys['jwks']> {
    return this.keys.jwks();
  }
}
