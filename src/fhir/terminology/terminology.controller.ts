import { Controller, Get, Query, Res } from '@nestjs/common';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import type { FastifyReply } from 'fastify';
import { RequirePermission } from '../../auth/permission.decorators.js';
import { sendFhirJson } from '../fhir-headers.js';
import { TerminologyService } from './terminology.service.js';

type QueryRecord = Record<string, string | string[] | undefined>;

/** Terminology of the R4 definitions: no patient data, so any signed-in user may ask. */
@ApiTags('FHIR')
@Controller('fhir')
export class TerminologyController {
  constructor(private readonly terminology: TerminologyService) {}

  @Get('ValueSet/$expand')
  @RequirePermission('fhir:terminology')
  @ApiOperation({
    summary: 'Expand a value set of the R4 definitions (url, filter, offset, count)',
  })
  expand(@Query() query: QueryRecord, @Res({ passthrough: true }) reply: FastifyReply): unknown {
    return sendFhirJson(reply, this.terminology.expand(query));
  }

  @Get('ValueSet/$validate-code')
  @RequirePermission('fhir:terminology')
  @ApiOperation({ summary: 'Whether a code (system, code, display) is in a value set (url)' })
  validateCode(
    @Query() query: QueryRecord,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): unknown {
    return sendFhirJson(reply, this.terminology.validateCode(query));
  }

  @Get('CodeSystem/$lookup')
  @RequirePermission('fhir:terminology')
  @ApiOperation({ summary: 'The display of a code (system, code) of an R4 code system' })
  lookup(@Query() query: QueryRecord, @Res({ passthrough: true }) reply: FastifyReply): unknown {
    return sendFhirJson(reply, this.terminology.lookup(query));
  }
}
