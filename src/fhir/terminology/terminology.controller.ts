import { applyDecorators, Body, Controller, Get, HttpCode, Post, Query, Res } from '@nestjs/common';
import { ApiBody, ApiOperation, ApiQuery, ApiTags } from '@nestjs/swagger';
import type { FastifyReply } from 'fastify';
import { RequirePermission } from '../../auth/permission.decorators.js';
import { sendFhirJson } from '../fhir-headers.js';
import { PARAMETERS } from '../fhir-swagger.js';
import { operationInput } from '../operation-input.js';
import { MAX_EXPANSION_COUNT, TerminologyService } from './terminology.service.js';

type QueryRecord = Record<string, string | string[] | undefined>;

/** The query parameters an operation takes, in order, for Swagger UI (which sends only those). */
const Params = (...params: [name: string, description: string, required?: boolean][]) =>
  applyDecorators(
    ...params.map(([name, description, required = false]) =>
      ApiQuery({ name, required, description, schema: { type: 'string' } }),
    ),
  );

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
  @Params(
    ['url', 'Canonical URL, e.g. http://hl7.org/fhir/ValueSet/administrative-gender', true],
    ['filter', 'Words of the code or display'],
    ['offset', 'Codes to skip (paging), default 0'],
    ['count', `Codes to return, 0 to ${MAX_EXPANSION_COUNT} (the default)`],
  )
  expand(@Query() query: QueryRecord, @Res({ passthrough: true }) reply: FastifyReply): unknown {
    return sendFhirJson(reply, this.terminology.expand(query));
  }

  @Get('ValueSet/$validate-code')
  @RequirePermission('fhir:terminology')
  @ApiOperation({ summary: 'Whether a code (system, code, display) is in a value set (url)' })
  @Params(
    ['url', 'Canonical URL of the value set', true],
    ['system', 'Code system URL, e.g. http://hl7.org/fhir/administrative-gender'],
    ['code', 'The code, e.g. female', true],
    ['display', 'A display to check against the code system'],
  )
  validateCode(
    @Query() query: QueryRecord,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): unknown {
    return sendFhirJson(reply, this.terminology.validateCode(query));
  }

  @Get('CodeSystem/$lookup')
  @RequirePermission('fhir:terminology')
  @ApiOperation({ summary: 'The display of a code (system, code) of an R4 code system' })
  @Params(
    ['system', 'Code system URL, e.g. http://hl7.org/fhir/administrative-gender', true],
    ['code', 'The code, e.g. female', true],
  )
  lookup(@Query() query: QueryRecord, @Res({ passthrough: true }) reply: FastifyReply): unknown {
    return sendFhirJson(reply, this.terminology.lookup(query));
  }

  // The same operations by POST, their input a Parameters resource, as R4 has servers take
  // every operation; `coding` and `codeableConcept` can be sent only so.

  @Post('ValueSet/$expand')
  @HttpCode(200)
  @RequirePermission('fhir:terminology')
  @ApiOperation({ summary: 'ValueSet/$expand, its input a Parameters resource (url, filter…)' })
  @ApiBody(PARAMETERS)
  expandPosted(
    @Query() query: QueryRecord,
    @Body() body: unknown,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): unknown {
    return sendFhirJson(reply, this.terminology.expand(operationInput(query, body).query));
  }

  @Post('ValueSet/$validate-code')
  @HttpCode(200)
  @RequirePermission('fhir:terminology')
  @ApiOperation({
    summary:
      'ValueSet/$validate-code, its input a Parameters resource (url, and code or coding or codeableConcept)',
  })
  @ApiBody(PARAMETERS)
  validateCodePosted(
    @Query() query: QueryRecord,
    @Body() body: unknown,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): unknown {
    const input = operationInput(query, body, ['coding', 'codeableConcept']);
    return sendFhirJson(reply, this.terminology.validateCode(input.query, input.codings));
  }

  @Post('CodeSystem/$lookup')
  @HttpCode(200)
  @RequirePermission('fhir:terminology')
  @ApiOperation({
    summary: 'CodeSystem/$lookup, its input a Parameters resource (system and code, or coding)',
  })
  @ApiBody(PARAMETERS)
  lookupPosted(
    @Query() query: QueryRecord,
    @Body() body: unknown,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): unknown {
    const input = operationInput(query, body, ['coding']);
    return sendFhirJson(reply, this.terminology.lookup(input.query, input.codings));
  }
}
