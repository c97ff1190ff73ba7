import { Controller, Get, Req, Res } from '@nestjs/common';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { SMART_STYLE, SMART_STYLE_PATH } from '../auth/apps/smart-style.js';
import { Public } from '../auth/permission.decorators.js';
import { requestOrigin } from '../common/http/request-origin.js';
import { SmartConfiguration, type SmartDocument } from './smart-configuration.js';

@ApiTags('SMART')
@Controller()
export class SmartController {
  constructor(private readonly smart: SmartConfiguration) {}

  /**
   * SMART clients look for the document under the FHIR base URL (`/fhir/.well-known/...`);
   * others at the server's root. Both give the same document.
   */
  @Public()
  @Get(['.well-known/smart-configuration', 'fhir/.well-known/smart-configuration'])
  @ApiOperation({ summary: 'SMART App Launch discovery: token endpoint, scopes, capabilities' })
  configuration(
    @Req() request: FastifyRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<SmartDocument> {
    void reply.header('cache-control', 'public, max-age=300');
    return this.smart.document(requestOrigin(request));
  }

  @Public()
  @Get('.well-known/openid-configuration')
  @ApiOperation({
    summary: "OpenID Connect discovery: the issuer of the authorization endpoint's id_tokens",
  })
  openid(
    @Req() request: FastifyRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Record<string, unknown> {
    void reply.header('cache-control', 'public, max-age=300');
    return this.smart.openidConfiguration(requestOrigin(request));
  }

  /** The look apps launched with a patient should take (`smart_style_url` in the token response). */
  @Public()
  @Get(SMART_STYLE_PATH.slice(1))
  @ApiOperation({ summary: 'SMART App Launch styling: colours and type for launched apps' })
  style(@Res({ passthrough: true }) reply: FastifyReply): typeof SMART_STYLE {
    void reply.header('cache-control', 'public, max-age=3600');
    return SMART_STYLE;
  }
}
