import { Body, Controller, Headers, HttpCode, Post, Req, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiBody, ApiHeader, ApiOperation, ApiTags } from '@nestjs/swagger';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { AuthenticatedUser } from '../../auth/authenticated-user.js';
import { CurrentUser } from '../../auth/current-user.decorator.js';
import { RequirePermission } from '../../auth/permission.decorators.js';
import { fhirBaseUrl, sendFhirJson } from '../fhir-headers.js';
import { RESOURCE } from '../fhir-swagger.js';
import { BundleService } from './bundle.service.js';

/** `POST /fhir`: a batch or transaction Bundle. */
@ApiTags('FHIR')
@ApiBearerAuth()
@Controller('fhir')
export class BundleController {
  constructor(private readonly bundles: BundleService) {}

  @Post()
  @HttpCode(200)
  @RequirePermission('fhir:bundle')
  @ApiOperation({
    summary: 'Batch or transaction Bundle (a transaction commits all entries or none)',
  })
  @ApiHeader({
    name: 'Prefer',
    required: false,
    description: 'return=minimal | representation | OperationOutcome, for every write entry',
  })
  @ApiBody(RESOURCE)
  async bundle(
    @CurrentUser() user: AuthenticatedUser,
    @Body() body: unknown,
    @Headers('prefer') prefer: string | undefined,
    @Req() request: FastifyRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<unknown> {
    return sendFhirJson(
      reply,
      await this.bundles.process(user, body, fhirBaseUrl(request), prefer, request.id),
    );
  }
}
