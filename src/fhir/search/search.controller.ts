import {
  applyDecorators,
  Body,
  Controller,
  Get,
  Headers,
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
  ApiHeader,
  ApiOperation,
  ApiParam,
  ApiTags,
} from '@nestjs/swagger';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { AuthenticatedUser } from '../../auth/authenticated-user.js';
import { CurrentUser } from '../../auth/current-user.decorator.js';
import { FhirInteraction } from '../../auth/permission.decorators.js';
import { fhirBaseUrl, sendFhirJson } from '../fhir-headers.js';
import { PARAMETERS, TYPE_PARAM } from '../fhir-swagger.js';
import { operationInput } from '../operation-input.js';
import { postedCriteria } from './search-request.js';
import { SearchService } from './search.service.js';

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

/** Searches: of a type, in a patient's compartment (GET, or POST with a form), and $lastn. */
@ApiTags('FHIR')
@ApiBearerAuth()
@Controller('fhir')
export class SearchController {
  constructor(private readonly searches: SearchService) {}

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
      await this.searches.search(user, type, postedCriteria(query, body), fhirBaseUrl(request), {
        lenient: isLenient(prefer),
        viaPost: true,
      }),
    );
  }

  @Post('Observation/$lastn')
  @HttpCode(200)
  @FhirInteraction('search', 'Observation')
  @ApiOperation({
    summary: 'Observation/$lastn, its input a Parameters resource (max, and search criteria)',
  })
  @ApiBody(PARAMETERS)
  async lastNPosted(
    @CurrentUser() user: AuthenticatedUser,
    @Query() query: Record<string, string | string[] | undefined>,
    @Body() body: unknown,
    @Req() request: FastifyRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<unknown> {
    const input = operationInput(query, body).query;
    return sendFhirJson(reply, await this.searches.lastN(user, input, fhirBaseUrl(request), true));
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
    return this.sendCompartmentSearch(user, path, postedCriteria(query, body), request, reply, {
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
}

function isLenient(prefer: string | undefined): boolean {
  return /(?:^|[;,\s])handling=lenient\b/i.test(prefer ?? '');
}
