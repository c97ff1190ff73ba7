import { Controller, Get, Req, Res } from '@nestjs/common';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import type { FastifyReply, FastifyRequest } from 'fastify';
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
}
