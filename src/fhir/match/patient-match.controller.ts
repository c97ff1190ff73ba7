import { Body, Controller, HttpCode, Post, Req, Res } from '@nestjs/common';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { AuthenticatedUser } from '../../auth/authenticated-user.js';
import { CurrentUser } from '../../auth/current-user.decorator.js';
import { FhirInteraction } from '../../auth/permission.decorators.js';
import { fhirBaseUrl, sendFhirJson } from '../fhir-headers.js';
import { PatientMatchService } from './patient-match.service.js';

@ApiTags('FHIR')
@Controller('fhir')
export class PatientMatchController {
  constructor(private readonly matches: PatientMatchService) {}

  @Post('Patient/$match')
  @FhirInteraction('search', 'Patient')
  @HttpCode(200)
  @ApiOperation({
    summary:
      'Patients that may be the one described (Parameters: resource, onlyCertainMatches, count), scored and graded',
  })
  async match(
    @CurrentUser() user: AuthenticatedUser,
    @Body() body: unknown,
    @Req() request: FastifyRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<unknown> {
    return sendFhirJson(reply, await this.matches.match(user, body, fhirBaseUrl(request)));
  }
}
