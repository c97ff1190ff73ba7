import {
  applyDecorators,
  Body,
  Controller,
  Get,
  HttpCode,
  Param,
  Post,
  Query,
  Req,
  Res,
} from '@nestjs/common';
import {
  ApiBearerAuth,
  ApiBody,
  ApiOperation,
  ApiParam,
  ApiQuery,
  ApiResponse,
  ApiTags,
} from '@nestjs/swagger';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { AuthenticatedUser } from '../auth/authenticated-user.js';
import { CurrentUser } from '../auth/current-user.decorator.js';
import { FhirInteraction } from '../auth/permission.decorators.js';
import { fhirBaseUrl, sendFhirJson } from './fhir-headers.js';
import { OUTCOME, PARAMETERS, RESOURCE, TYPE_PARAM } from './fhir-swagger.js';
import { operationInput, type OperationQuery } from './operation-input.js';
import { EverythingService } from './search/everything.service.js';
import { ValidateService } from './validate.service.js';

/** What $validate takes in the URL, as in a Parameters body, for Swagger UI. */
const VALIDATE_QUERY = applyDecorators(
  ApiQuery({
    name: 'mode',
    required: false,
    description: 'create or update (on an instance, update only)',
    schema: { type: 'string' },
  }),
  ApiQuery({
    name: 'profile',
    required: false,
    description:
      "The type's base profile only, e.g. http://hl7.org/fhir/StructureDefinition/Patient",
    schema: { type: 'string' },
  }),
);

/** FHIR operations on the resource API: $validate (stores nothing) and Patient $everything. */
@ApiTags('FHIR')
@ApiBearerAuth()
@Controller('fhir')
export class OperationsController {
  constructor(
    private readonly validation: ValidateService,
    private readonly everythings: EverythingService,
  ) {}

  @Post(':type/$validate')
  @FhirInteraction('create')
  @HttpCode(200)
  @ApiOperation({
    summary: 'Validate a resource without storing it (200 OperationOutcome, valid or not)',
  })
  @ApiParam(TYPE_PARAM)
  @VALIDATE_QUERY
  @ApiBody(RESOURCE)
  @ApiResponse({ status: 200, ...OUTCOME })
  async validate(
    @Param('type') type: string,
    @Query() query: OperationQuery,
    @Body() body: unknown,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<unknown> {
    return sendFhirJson(reply, await this.validation.validate(type, body, undefined, query));
  }

  @Post(':type/:id/$validate')
  @FhirInteraction('update')
  @HttpCode(200)
  @ApiOperation({
    summary:
      'Validate a body as an update of this resource, storing nothing (200 OperationOutcome)',
  })
  @ApiParam(TYPE_PARAM)
  @VALIDATE_QUERY
  @ApiBody(RESOURCE)
  @ApiResponse({ status: 200, ...OUTCOME })
  async validateInstance(
    @Param('type') type: string,
    @Param('id') id: string,
    @Query() query: OperationQuery,
    @Body() body: unknown,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<unknown> {
    return sendFhirJson(reply, await this.validation.validate(type, body, id, query));
  }

  @Post('Patient/:id/$everything')
  @HttpCode(200)
  @FhirInteraction('read', 'Patient')
  @ApiOperation({
    summary:
      'Patient $everything, its input a Parameters resource (start, end, _type, _since, _count)',
  })
  @ApiBody(PARAMETERS)
  async everythingPosted(
    @CurrentUser() user: AuthenticatedUser,
    @Param('id') id: string,
    @Query() query: Record<string, string | string[] | undefined>,
    @Body() body: unknown,
    @Req() request: FastifyRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<unknown> {
    return this.everything(user, id, operationInput(query, body).query, request, reply);
  }

  @Get('Patient/:id/$everything')
  @FhirInteraction('read', 'Patient')
  @ApiOperation({
    summary:
      'A patient, every resource in their compartment and the shared resources those refer to, that you may read (start, end, _type, _since, _count)',
  })
  async everything(
    @CurrentUser() user: AuthenticatedUser,
    @Param('id') id: string,
    @Query() query: Record<string, string | string[] | undefined>,
    @Req() request: FastifyRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<unknown> {
    return sendFhirJson(
      reply,
      await this.everythings.everything(user, id, query, fhirBaseUrl(request)),
    );
  }
}
