import {
  applyDecorators,
  Body,
  Controller,
  Delete,
  Get,
  Headers,
  HttpCode,
  Param,
  Patch,
  Post,
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
import { operationOutcome } from '../common/errors/operation-outcome.js';
import {
  buildCapabilityStatement,
  capabilityResources,
  FHIR_VERSIONS,
} from './capability-statement.js';
import { FhirDefinitions } from './fhir-definitions.js';
import { resourceBody, sendNativeBinary } from './binary-content.js';
import { wantsNativeBinary } from './fhir-format.js';
import { fhirBaseUrl, sendFhirJson, sendRead, sendStored } from './fhir-headers.js';
import { historyParams, historyListParams } from './history-params.js';
import type { AuthenticatedUser } from '../auth/authenticated-user.js';
import { CurrentUser } from '../auth/current-user.decorator.js';
import { FhirInteraction, Public, RequirePermission } from '../auth/permission.decorators.js';
import { BundleService } from './bundle/bundle.service.js';
import { CascadeDelete, cascadeOutcome, cascadeRequested, splitCascade } from './cascade-delete.js';
import { FhirService } from './fhir.service.js';
import { ValidateService } from './validate.service.js';
import { EverythingService } from './search/everything.service.js';
import { SearchDefinitions } from './search/search-definitions.js';
import { SearchService } from './search/search.service.js';
import { SOFTWARE_VERSION } from '../common/software.js';
import { AppConfig } from '../config/config.js';
import { restSecurity, SmartConfiguration } from '../smart/smart-configuration.js';
import { requestOrigin } from '../common/http/request-origin.js';

const OUTCOME = {
  description: 'OperationOutcome describing the problem',
  schema: { $ref: '#/components/schemas/OperationOutcome' },
};
const RESOURCE = { schema: { $ref: '#/components/schemas/Resource' } };
const IF_NONE_MATCH = {
  name: 'If-None-Match',
  required: false,
  description: 'The ETag of the copy held, e.g. W/"2" (or If-Modified-Since): 304 if current',
};
const NOT_MODIFIED = { status: 304, description: 'Not Modified: the copy held is current' };
const CASCADE_QUERY = {
  name: '_cascade',
  required: false,
  enum: ['delete'],
  description:
    'delete: also delete every resource that refers to it, directly or through others, in one ' +
    'transaction (each checked as a delete of its own)',
};
const CASCADE_HEADER = {
  name: 'X-Cascade',
  required: false,
  description: 'delete: the same as _cascade=delete',
};
const CASCADED = {
  status: 200,
  description:
    'With _cascade=delete: deleted, and the OperationOutcome counts by type what went with it',
  schema: { $ref: '#/components/schemas/OperationOutcome' },
};
const TYPE_PARAM = {
  name: 'type',
  description: 'FHIR R4 resource type, e.g. Patient',
  example: 'Patient',
};
/** The path of a compartment search: /Patient/{id}/{type}. */
interface CompartmentPath {
  compartment: string;
  id: string;
  type: string;
}
const CompartmentParams = () =>
  applyDecorators(
    ApiParam({ name: 'compartment', description: 'Patient (the one compartment offered)' }),
    ApiParam({ name: 'id', description: "The patient's id" }),
    ApiParam({ ...TYPE_PARAM, example: 'Observation' }),
  );

@ApiTags('FHIR')
@ApiBearerAuth()
@Controller('fhir')
export class FhirController {
  /** What each resource type supports, for /metadata: fixed once the definitions are loaded. */
  private readonly capabilities: object[];

  constructor(
    private readonly fhir: FhirService,
    private readonly cascades: CascadeDelete,
    private readonly definitions: FhirDefinitions,
    private readonly searches: SearchService,
    private readonly bundles: BundleService,
    private readonly everythings: EverythingService,
    private readonly validation: ValidateService,
    searchDefinitions: SearchDefinitions,
    private readonly smart: SmartConfiguration,
    private readonly config: AppConfig,
  ) {
    this.capabilities = capabilityResources(
      definitions.resourceTypes,
      searchDefinitions,
      config.referentialIntegrity,
    );
  }

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
      await this.bundles.process(user, body, fhirBaseUrl(request), prefer),
    );
  }

  @Get('metadata')
  @Public()
  @ApiOperation({ summary: 'CapabilityStatement of this server' })
  async metadata(
    @Req() request: FastifyRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<Record<string, unknown>> {
    const smart = await this.smart.document(requestOrigin(request));
    return sendFhirJson(
      reply,
      buildCapabilityStatement(
        this.capabilities,
        { name: 'CareVault', version: SOFTWARE_VERSION, baseUrl: fhirBaseUrl(request) },
        restSecurity(smart, this.config.corsOrigins.length > 0),
      ),
    );
  }

  @Get('$versions')
  @Public()
  @ApiOperation({ summary: 'The FHIR versions served ($versions): R4 (4.0) only' })
  versions(@Res({ passthrough: true }) reply: FastifyReply): typeof FHIR_VERSIONS {
    return sendFhirJson(reply, FHIR_VERSIONS);
  }

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
    if (ifNoneExist) {
      const result = await this.fhir.conditionalCreate(user, type, resource, ifNoneExist);
      return sendStored(reply, request, result.stored, {
        status: result.created ? 201 : 200,
        prefer,
        location: true,
      });
    }
    const stored = await this.fhir.create(user, type, resource);
    return sendStored(reply, request, stored, { status: 201, prefer, location: true });
  }

  @Get(':type')
  @FhirInteraction('search')
  @ApiOperation({
    summary: 'Search (searchset Bundle); prefer POST /fhir/{type}/_search for PHI criteria',
  })
  @ApiParam(TYPE_PARAM)
  @ApiHeader({
    name: 'Prefer',
    required: false,
    description: 'handling=lenient ignores unknown parameters',
  })
  async search(
    @CurrentUser() user: AuthenticatedUser,
    @Param('type') type: string,
    @Query() query: Record<string, string | string[] | undefined>,
    @Headers('prefer') prefer: string | undefined,
    @Req() request: FastifyRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<unknown> {
    return sendFhirJson(
      reply,
      await this.searches.search(user, type, query, fhirBaseUrl(request), {
        lenient: isLenient(prefer),
      }),
    );
  }

  @Post(':type/_search')
  @FhirInteraction('search')
  @HttpCode(200)
  @ApiOperation({
    summary: 'Search with criteria in a form body (application/x-www-form-urlencoded)',
  })
  @ApiParam(TYPE_PARAM)
  async searchByPost(
    @CurrentUser() user: AuthenticatedUser,
    @Param('type') type: string,
    @Query() query: Record<string, string | string[] | undefined>,
    @Body() body: unknown,
    @Headers('prefer') prefer: string | undefined,
    @Req() request: FastifyRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<unknown> {
    return sendFhirJson(
      reply,
      await this.searches.search(user, type, formCriteria(query, body), fhirBaseUrl(request), {
        lenient: isLenient(prefer),
        viaPost: true,
      }),
    );
  }

  @Get('Observation/$lastn')
  @FhirInteraction('search', 'Observation')
  @ApiOperation({
    summary:
      "A patient's most recent observations of each code (max, default 1, and search criteria)",
  })
  async lastN(
    @CurrentUser() user: AuthenticatedUser,
    @Query() query: Record<string, string | string[] | undefined>,
    @Req() request: FastifyRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<unknown> {
    return sendFhirJson(reply, await this.searches.lastN(user, query, fhirBaseUrl(request)));
  }

  @Get(':compartment/:id/:type')
  @FhirInteraction('search')
  @ApiOperation({
    summary: "Compartment search: the resources of one type in a patient's compartment",
  })
  @CompartmentParams()
  compartmentSearch(
    @CurrentUser() user: AuthenticatedUser,
    @Param() path: CompartmentPath,
    @Query() query: Record<string, string | string[] | undefined>,
    @Headers('prefer') prefer: string | undefined,
    @Req() request: FastifyRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<unknown> {
    return this.sendCompartmentSearch(user, path, query, request, reply, {
      lenient: isLenient(prefer),
    });
  }

  @Post(':compartment/:id/:type/_search')
  @FhirInteraction('search')
  @HttpCode(200)
  @ApiOperation({
    summary: 'Compartment search with criteria in a form body (application/x-www-form-urlencoded)',
  })
  @CompartmentParams()
  compartmentSearchByPost(
    @CurrentUser() user: AuthenticatedUser,
    @Param() path: CompartmentPath,
    @Query() query: Record<string, string | string[] | undefined>,
    @Body() body: unknown,
    @Headers('prefer') prefer: string | undefined,
    @Req() request: FastifyRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<unknown> {
    return this.sendCompartmentSearch(user, path, formCriteria(query, body), request, reply, {
      lenient: isLenient(prefer),
      viaPost: true,
    });
  }

  private async sendCompartmentSearch(
    user: AuthenticatedUser,
    path: CompartmentPath,
    criteria: Record<string, string | string[] | undefined>,
    request: FastifyRequest,
    reply: FastifyReply,
    options: { lenient: boolean; viaPost?: boolean },
  ): Promise<unknown> {
    return sendFhirJson(
      reply,
      await this.searches.compartmentSearch(
        user,
        { type: path.compartment, id: path.id },
        path.type,
        criteria,
        fhirBaseUrl(request),
        options,
      ),
    );
  }

  @Post(':type/$validate')
  @FhirInteraction('create')
  @HttpCode(200)
  @ApiOperation({
    summary: 'Validate a resource without storing it (200 OperationOutcome, valid or not)',
  })
  @ApiParam(TYPE_PARAM)
  @ApiBody(RESOURCE)
  @ApiResponse({ status: 200, ...OUTCOME })
  validate(
    @Param('type') type: string,
    @Body() body: unknown,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): unknown {
    return sendFhirJson(reply, this.validation.validate(type, body));
  }

  @Put(':type')
  @FhirInteraction('update')
  @ApiOperation({ summary: 'Conditional update: PUT /fhir/{type}?criteria' })
  @ApiParam(TYPE_PARAM)
  async conditionalUpdate(
    @CurrentUser() user: AuthenticatedUser,
    @Param('type') type: string,
    @Body() body: unknown,
    @Headers('if-match') ifMatch: string | undefined,
    @Headers('prefer') prefer: string | undefined,
    @Req() request: FastifyRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<unknown> {
    const { stored, created } = await this.fhir.conditionalUpdate(
      user,
      type,
      queryOf(request),
      body,
      ifMatch,
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
      await this.fhir.conditionalDelete(user, type, criteria, ifMatch);
      return undefined;
    }
    const cascaded = await this.cascades.conditionalDelete(user, type, criteria, ifMatch);
    if (!cascaded) return undefined;
    reply.status(200);
    return sendFhirJson(reply, cascadeOutcome(cascaded));
  }

  @Get('_history')
  @RequirePermission('fhir:system')
  @ApiOperation({
    summary: 'History of every resource of the types you may read (Bundle, newest first)',
  })
  async systemHistory(
    @CurrentUser() user: AuthenticatedUser,
    @Query() query: Record<string, unknown>,
    @Req() request: FastifyRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<unknown> {
    return sendFhirJson(
      reply,
      await this.fhir.systemHistory(user, historyListParams(query), fhirBaseUrl(request)),
    );
  }

  @Get(':type/_history')
  @FhirInteraction('history')
  @ApiOperation({ summary: 'History of every resource of a type (Bundle, newest first)' })
  @ApiParam(TYPE_PARAM)
  async typeHistory(
    @CurrentUser() user: AuthenticatedUser,
    @Param('type') type: string,
    @Query() query: Record<string, unknown>,
    @Req() request: FastifyRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<unknown> {
    return sendFhirJson(
      reply,
      await this.fhir.typeHistory(user, type, historyListParams(query), fhirBaseUrl(request)),
    );
  }

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
    const stored = await this.fhir.read(user, type, id);
    return type === 'Binary' && wantsNativeBinary(request)
      ? sendNativeBinary(reply, request, stored, this.definitions.subsets)
      : sendRead(reply, request, stored, this.definitions.subsets);
  }

  @Put(':type/:id')
  @FhirInteraction('update')
  @ApiOperation({
    summary: 'Update (new version), or create with this id; If-Match mismatch gives 412',
  })
  @ApiParam(TYPE_PARAM)
  @ApiBody(RESOURCE)
  @ApiHeader({ name: 'If-Match', required: false, description: 'Version ETag, e.g. W/"1"' })
  @ApiResponse({ status: 200, ...RESOURCE })
  @ApiResponse({ status: 412, ...OUTCOME })
  async update(
    @CurrentUser() user: AuthenticatedUser,
    @Param('type') type: string,
    @Param('id') id: string,
    @Body() body: unknown,
    @Headers('if-match') ifMatch: string | undefined,
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
    );
    return sendStored(reply, request, stored, {
      status: created ? 201 : 200,
      prefer,
      location: true,
    });
  }

  @Patch(':type')
  @FhirInteraction('update')
  @ApiOperation({
    summary: 'Conditional patch: PATCH /fhir/{type}?criteria (JSON Patch or FHIRPath Patch)',
  })
  @ApiParam(TYPE_PARAM)
  async conditionalPatch(
    @CurrentUser() user: AuthenticatedUser,
    @Param('type') type: string,
    @Body() body: unknown,
    @Headers('if-match') ifMatch: string | undefined,
    @Headers('prefer') prefer: string | undefined,
    @Req() request: FastifyRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<unknown> {
    const stored = await this.fhir.conditionalPatch(user, type, queryOf(request), body, ifMatch);
    return sendStored(reply, request, stored, { status: 200, prefer });
  }

  @Patch(':type/:id')
  @FhirInteraction('update')
  @ApiOperation({
    summary:
      'Patch with JSON Patch (application/json-patch+json) or FHIRPath Patch (a Parameters resource)',
  })
  @ApiParam(TYPE_PARAM)
  @ApiBody({
    schema: { oneOf: [{ type: 'array', items: { type: 'object' } }, { type: 'object' }] },
    examples: {
      jsonPatch: { value: [{ op: 'add', path: '/active', value: true }] },
      fhirPathPatch: {
        value: {
          resourceType: 'Parameters',
          parameter: [
            {
              name: 'operation',
              part: [
                { name: 'type', valueCode: 'replace' },
                { name: 'path', valueString: 'Patient.active' },
                { name: 'value', valueBoolean: true },
              ],
            },
          ],
        },
      },
    },
  })
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
    const stored = await this.fhir.patch(user, type, id, body, ifMatch);
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
    if (/return=OperationOutcome/i.test(prefer ?? '')) {
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

  @Get('Patient/:id/$everything')
  @FhirInteraction('read', 'Patient')
  @ApiOperation({
    summary:
      'A patient and every resource in their compartment that you may read (start, end, _type, _since, _count)',
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

  @Get(':type/:id/_history')
  @FhirInteraction('history')
  @ApiOperation({ summary: 'Every version of one resource (history Bundle)' })
  @ApiParam(TYPE_PARAM)
  async history(
    @CurrentUser() user: AuthenticatedUser,
    @Param('type') type: string,
    @Param('id') id: string,
    @Query() query: Record<string, unknown>,
    @Req() request: FastifyRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<unknown> {
    return sendFhirJson(
      reply,
      await this.fhir.history(user, type, id, historyParams(query, type, id), fhirBaseUrl(request)),
    );
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
    const stored = await this.fhir.vread(user, type, id, vid);
    return type === 'Binary' && wantsNativeBinary(request)
      ? sendNativeBinary(reply, request, stored, this.definitions.subsets)
      : sendRead(reply, request, stored, this.definitions.subsets);
  }
}

function isLenient(prefer: string | undefined): boolean {
  return /(?:^|[;,\s])handling=lenient\b/i.test(prefer ?? '');
}

/** The criteria of a search by POST: its query string and its form body together. */
function formCriteria(
  query: Record<string, string | string[] | undefined>,
  body: unknown,
): Record<string, string | string[] | undefined> {
  const form = typeof body === 'object' && body !== null && !Array.isArray(body) ? body : {};
  return { ...query, ...(form as Record<string, string | string[]>) };
}

/** The raw query string of a request: the criteria of a conditional update or delete. */
function queryOf(request: FastifyRequest): string {
  const index = request.url.indexOf('?');
  return index === -1 ? '' : request.url.slice(index + 1);
}
