import { Body, Controller, Get, HttpCode, Post, Query, Req, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiConsumes, ApiOperation, ApiTags } from '@nestjs/swagger';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { AuthenticatedUser } from '../../auth/authenticated-user.js';
import { CurrentUser } from '../../auth/current-user.decorator.js';
import { Public, RequirePermission } from '../../auth/permission.decorators.js';
import { StrictRateLimit } from '../../common/http/rate-limit.js';
import { fhirBaseUrl } from '../../fhir/fhir-headers.js';
import { isAuthorizationRequest } from './authorization-request.js';
import { AuthorizeService, type AuthorizeOutcome } from './authorize.service.js';
import { LaunchContexts } from './launch-contexts.js';
import { LaunchDto } from './launch.dto.js';

/** SMART App Launch's authorization endpoint: a sign-in page for people, not an API. */
@ApiTags('Authentication')
@Controller('auth/authorize')
export class AuthorizeController {
  constructor(private readonly authorize: AuthorizeService) {}

  @Public()
  @Get()
  @ApiOperation({
    summary:
      'SMART App Launch authorization endpoint (standalone launch, PKCE S256): the sign-in page',
  })
  async begin(
    @Query() query: Record<string, unknown>,
    @Req() request: FastifyRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<string | undefined> {
    return answer(reply, await this.authorize.begin(query, fhirBaseUrl(request)));
  }

  @Public()
  @Post()
  @StrictRateLimit()
  @HttpCode(200)
  @ApiConsumes('application/x-www-form-urlencoded')
  @ApiOperation({
    summary:
      'The sign-in form of the authorization endpoint (a browser posts it): a redirect to the app with a code, or the page again; or an authorization request posted as a form (SMART authorize-post), answered as the GET',
  })
  async submit(
    @Body() body: unknown,
    @Req() request: FastifyRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<string | undefined> {
    const fields = (body !== null && typeof body === 'object' ? body : {}) as Record<
      string,
      unknown
    >;
    if (isAuthorizationRequest(fields)) {
      return answer(reply, await this.authorize.begin(fields, fhirBaseUrl(request)));
    }
    return answer(reply, await this.authorize.submit(fields));
  }
}

/** The `launch` value an EHR front-end opens an app with. */
@ApiTags('Authentication')
@Controller('auth/launch')
export class LaunchController {
  constructor(private readonly launches: LaunchContexts) {}

  @RequirePermission('account:self')
  @Post()
  @HttpCode(200)
  @ApiBearerAuth()
  @ApiOperation({
    summary:
      "SMART EHR launch: a launch value for the app's launch URL, naming the patient (and encounter) open on screen",
  })
  create(
    @CurrentUser() user: AuthenticatedUser,
    @Body() body: LaunchDto,
  ): Promise<{ launch: string; expires_in: number }> {
    return this.launches.create(user, {
      clientId: body.client_id,
      patient: body.patient,
      ...(body.encounter !== undefined ? { encounter: body.encounter } : {}),
    });
  }
}

/**
 * The page or the redirect, returned rather than sent so that Nest sends it after the audit
 * interceptor has committed the request's row (a sign-in discloses a patient to the app).
 */
function answer(reply: FastifyReply, outcome: AuthorizeOutcome): string | undefined {
  // Codes and the sealed request are never cached, nor passed on in a Referer.
  void reply.header('cache-control', 'no-store').header('referrer-policy', 'no-referrer');
  if ('redirect' in outcome) {
    void reply.status(303).header('location', outcome.redirect);
    return undefined;
  }
  void reply
    .status(outcome.status)
    .header('content-type', 'text/html; charset=utf-8')
    // No script, no framing (clickjacking), and the form may only post here and be answered
    // with a redirect to the app.
    .header(
      'content-security-policy',
      `default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'${outcome.formAction ? ` ${outcome.formAction}` : ''}`,
    );
  return outcome.page;
}
