import {
  Body,
  Controller,
  Delete,
  Get,
  Headers,
  HttpCode,
  Param,
  Patch,
  Put,
  Query,
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
import { operationOutcome } from '../common/errors/operation-outcome.js';
import { resourceBody, sendNativeBinary } from './binary-content.js';
import { CascadeDelete, cascadeOutcome, cascadeRequested } from './cascade-delete.js';
import { FhirDefinitions } from './fhir-definitions.js';
import { wantsNativeBinary } from './fhir-format.js';
import { parsePreferReturn, sendFhirJson, sendRead, sendStored } from './fhir-headers.js';
import {
  CASCADE_HEADER,
  CASCADE_QUERY,
  CASCADED,
  IF_MATCH,
  IF_NONE_MATCH,
  IF_NONE_MATCH_WRITE,
  NOT_MODIFIED,
  OUTCOME,
  PATCH_BODY,
  RESOURCE,
  TYPE_PARAM,
} from './fhir-swagger.js';
import type { StoredResource } from './fhir-types.js';
import { FhirPatch } from './fhir-patch.service.js';
import { FhirService } from './fhir.service.js';

/** One resource: read, vread, update, patch and delete (`/fhir/{type}/{id}`). */
@ApiTags('FHIR')
@ApiBearerAuth()
@Controller('fhir')
export class ResourceInstanceController {
  constructor(
    private readonly fhir: FhirService,
    private readonly patches: FhirPatch,
    private readonly cascades: CascadeDelete,
    private readonly definitions: FhirDefinitions,
  ) {}

  @Get(':type/:id')
  @FhirInteraction('read')
  @ApiOperation({ summary: 'Read the current version (410 once deleted)' })
  @ApiParam(TYPE_PARAM)
  @ApiHeader(IF_NONE_MATCH)
  @ApiResponse({ status: 200, ...RESOURCE })
  @ApiResponse(NOT_MODIFIED)
  @ApiResponse({ status: 404, ...OUTCOME })
  @ApiResponse({ status: 410, ...OUTCOME })
  async read(
    @CurrentUser() user: AuthenticatedUser,
    @Param('type') type: string,
    @Param('id') id: string,
    @Req() request: FastifyRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<unknown> {
    return this.sendVersion(type, await this.fhir.read(user, type, id), request, reply);
  }

  @Get(':type/:id/_history/:vid')
  @FhirInteraction('read')
  @ApiOperation({ summary: 'Read one version (vread)' })
  @ApiParam(TYPE_PARAM)
  @ApiHeader(IF_NONE_MATCH)
  @ApiResponse({ status: 200, ...RESOURCE })
  @ApiResponse(NOT_MODIFIED)
  async vread(
    @CurrentUser() user: AuthenticatedUser,
    @Param('type') type: string,
    @Param('id') id: string,
    @Param('vid') vid: string,
    @Req() request: FastifyRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<unknown> {
    return this.sendVersion(type, await this.fhir.vread(user, type, id, vid), request, reply);
  }

  @Put(':type/:id')
  @FhirInteraction('update')
  @ApiOperation({
    summary: 'Update (new version), or create with this id; If-Match mismatch gives 412',
  })
  @ApiParam(TYPE_PARAM)
  @ApiBody(RESOURCE)
  @ApiHeader(IF_MATCH)
  @ApiHeader(IF_NONE_MATCH_WRITE)
  @ApiResponse({ status: 200, ...RESOURCE })
  @ApiResponse({ status: 412, ...OUTCOME })
  async update(
    @CurrentUser() user: AuthenticatedUser,
    @Param('type') type: string,
    @Param('id') id: string,
    @Body() body: unknown,
    @Headers('if-match') ifMatch: string | undefined,
    @Headers('if-none-match') ifNoneMatch: string | undefined,
    @Headers('prefer') prefer: string | undefined,
    @Req() request: FastifyRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<unknown> {
    const { stored, created } = await this.fhir.update(
      user,
      type,
      id,
      resourceBody(type, body, request),
      ifMatch,
      { ifNoneMatch },
    );
    return sendStored(reply, request, stored, {
      status: created ? 201 : 200,
      prefer,
      location: true,
    });
  }

  @Patch(':type/:id')
  @FhirInteraction('update')
  @ApiOperation({
    summary:
      'Patch with JSON Patch (application/json-patch+json) or FHIRPath Patch (a Parameters resource)',
  })
  @ApiParam(TYPE_PARAM)
  @ApiBody(PATCH_BODY)
  @ApiResponse({ status: 200, ...RESOURCE })
  async patch(
    @CurrentUser() user: AuthenticatedUser,
    @Param('type') type: string,
    @Param('id') id: string,
    @Body() body: unknown,
    @Headers('if-match') ifMatch: string | undefined,
    @Headers('prefer') prefer: string | undefined,
    @Req() request: FastifyRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<unknown> {
    const stored = await this.patches.patch(user, type, id, body, ifMatch);
    return sendStored(reply, request, stored, { status: 200, prefer });
  }

  @Delete(':type/:id')
  @FhirInteraction('delete')
  @HttpCode(204)
  @ApiOperation({ summary: 'Delete (a new, empty version); later reads give 410' })
  @ApiParam(TYPE_PARAM)
  @ApiQuery(CASCADE_QUERY)
  @ApiHeader(CASCADE_HEADER)
  @ApiResponse({ status: 204, description: 'Deleted' })
  @ApiResponse(CASCADED)
  @ApiResponse({
    status: 409,
    description:
      'Other resources refer to it (FHIR_REFERENTIAL_INTEGRITY), or, with _cascade=delete, ' +
      'more than FHIR_CASCADE_MAX do',
    schema: OUTCOME.schema,
  })
  async delete(
    @CurrentUser() user: AuthenticatedUser,
    @Param('type') type: string,
    @Param('id') id: string,
    @Query('_cascade') cascadeQuery: string | string[] | undefined,
    @Headers('x-cascade') cascadeHeader: string | undefined,
    @Headers('if-match') ifMatch: string | undefined,
    @Headers('prefer') prefer: string | undefined,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<unknown> {
    if (cascadeRequested([cascadeQuery ?? []].flat(), cascadeHeader)) {
      reply.status(200);
      return sendFhirJson(
        reply,
        cascadeOutcome(await this.cascades.delete(user, type, id, ifMatch)),
      );
    }
    await this.fhir.delete(user, type, id, ifMatch);
    if (parsePreferReturn(prefer) === 'OperationOutcome') {
      reply.status(200);
      return sendFhirJson(
        reply,
        operationOutcome([
          { severity: 'information', code: 'informational', diagnostics: `${type} deleted` },
        ]),
      );
    }
    return undefined;
  }

  /** A Binary answers in its own format unless FHIR JSON is asked for (R4 http.html#binary). */
  private sendVersion(
    type: string,
    stored: StoredResource,
    request: FastifyRequest,
    reply: FastifyReply,
  ): unknown {
    return type === 'Binary' && wantsNativeBinary(request)
      ? sendNativeBinary(reply, request, stored, this.definitions.subsets)
      : sendRead(reply, request, stored, this.definitions.subsets);
  }
}
