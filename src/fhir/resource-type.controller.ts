import {
  Body,
  Controller,
  Delete,
  Headers,
  HttpCode,
  Param,
  Patch,
  Post,
  Put,
  Req,
  Res,
} from '@nestjs/common';
import {
  ApiBearerAuth,
  ApiBody,
  ApiHeader,
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
import { resourceBody } from './binary-content.js';
import { CascadeDelete, cascadeOutcome, cascadeRequested, splitCascade } from './cascade-delete.js';
import { sendFhirJson, sendStored } from './fhir-headers.js';
import {
  CASCADE_HEADER,
  CASCADE_QUERY,
  CASCADED,
  IF_MATCH,
  IF_NONE_MATCH_WRITE,
  OUTCOME,
  PATCH_BODY,
  RESOURCE,
  TYPE_PARAM,
} from './fhir-swagger.js';
import { ConditionalWrites } from './conditional-writes.service.js';
import { FhirService } from './fhir.service.js';

/**
 * Writes at the type level: create (`POST /fhir/{type}`, conditional with If-None-Exist), and
 * the conditional update, patch and delete that name their resource by search criteria.
 */
@ApiTags('FHIR')
@ApiBearerAuth()
@Controller('fhir')
export class ResourceTypeController {
  constructor(
    private readonly fhir: FhirService,
    private readonly conditional: ConditionalWrites,
    private readonly cascades: CascadeDelete,
  ) {}

  @Post(':type')
  @FhirInteraction('create')
  @ApiOperation({ summary: 'Create a resource (201, Location, ETag W/"1")' })
  @ApiParam(TYPE_PARAM)
  @ApiBody({
    ...RESOURCE,
    examples: {
      patient: {
        value: {
          resourceType: 'Patient',
          name: [{ family: 'Example', given: ['Alex'] }],
          birthDate: '1980-04-12',
        },
      },
    },
  })
  @ApiHeader({
    name: 'Prefer',
    required: false,
    description: 'return=minimal | representation | OperationOutcome',
  })
  @ApiResponse({ status: 201, description: 'Created', ...RESOURCE })
  @ApiResponse({ status: 400, ...OUTCOME })
  async create(
    @CurrentUser() user: AuthenticatedUser,
    @Param('type') type: string,
    @Body() body: unknown,
    @Headers('prefer') prefer: string | undefined,
    @Headers('if-none-exist') ifNoneExist: string | undefined,
    @Req() request: FastifyRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<unknown> {
    const resource = resourceBody(type, body, request);
    // An empty header is a conditional create of no criteria (a 400), not a plain create.
    if (ifNoneExist !== undefined) {
      const result = await this.conditional.conditionalCreate(user, type, resource, ifNoneExist);
      return sendStored(reply, request, result.stored, {
        status: result.created ? 201 : 200,
        prefer,
        location: true,
      });
    }
    const stored = await this.fhir.create(user, type, resource);
    return sendStored(reply, request, stored, { status: 201, prefer, location: true });
  }

  @Put(':type')
  @FhirInteraction('update')
  @ApiOperation({ summary: 'Conditional update: PUT /fhir/{type}?criteria' })
  @ApiParam(TYPE_PARAM)
  @ApiBody(RESOURCE)
  @ApiHeader(IF_MATCH)
  @ApiHeader(IF_NONE_MATCH_WRITE)
  async conditionalUpdate(
    @CurrentUser() user: AuthenticatedUser,
    @Param('type') type: string,
    @Body() body: unknown,
    @Headers('if-match') ifMatch: string | undefined,
    @Headers('if-none-match') ifNoneMatch: string | undefined,
    @Headers('prefer') prefer: string | undefined,
    @Req() request: FastifyRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<unknown> {
    const { stored, created } = await this.conditional.conditionalUpdate(
      user,
      type,
      queryOf(request),
      body,
      ifMatch,
      ifNoneMatch,
    );
    return sendStored(reply, request, stored, {
      status: created ? 201 : 200,
      prefer,
      location: true,
    });
  }

  @Delete(':type')
  @FhirInteraction('delete')
  @HttpCode(204)
  @ApiOperation({ summary: 'Conditional delete: DELETE /fhir/{type}?criteria' })
  @ApiParam(TYPE_PARAM)
  @ApiQuery(CASCADE_QUERY)
  @ApiHeader(CASCADE_HEADER)
  @ApiHeader(IF_MATCH)
  @ApiResponse(CASCADED)
  async conditionalDelete(
    @CurrentUser() user: AuthenticatedUser,
    @Param('type') type: string,
    @Headers('x-cascade') cascadeHeader: string | undefined,
    @Headers('if-match') ifMatch: string | undefined,
    @Req() request: FastifyRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<unknown> {
    const { criteria, cascade } = splitCascade(queryOf(request));
    if (!cascadeRequested(cascade, cascadeHeader)) {
      await this.conditional.conditionalDelete(user, type, criteria, ifMatch);
      return undefined;
    }
    const cascaded = await this.cascades.conditionalDelete(user, type, criteria, ifMatch);
    if (!cascaded) return undefined;
    reply.status(200);
    return sendFhirJson(reply, cascadeOutcome(cascaded));
  }

  @Patch(':type')
  @FhirInteraction('update')
  @ApiOperation({
    summary: 'Conditional patch: PATCH /fhir/{type}?criteria (JSON Patch or FHIRPath Patch)',
  })
  @ApiParam(TYPE_PARAM)
  @ApiBody(PATCH_BODY)
  @ApiHeader(IF_MATCH)
  async conditionalPatch(
    @CurrentUser() user: AuthenticatedUser,
    @Param('type') type: string,
    @Body() body: unknown,
    @Headers('if-match') ifMatch: string | undefined,
    @Headers('prefer') prefer: string | undefined,
    @Req() request: FastifyRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<unknown> {
    const stored = await this.conditional.conditionalPatch(
      user,
      type,
      queryOf(request),
      body,
      ifMatch,
    );
    return sendStored(reply, request, stored, { status: 200, prefer });
  }
}

/** The raw query string of a request: the criteria of a conditional update, patch or delete. */
function queryOf(request: FastifyRequest): string {
  const index = request.url.indexOf('?');
  return index === -1 ? '' : request.url.slice(index + 1);
}
