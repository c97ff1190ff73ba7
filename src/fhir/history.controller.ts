import { applyDecorators, Controller, Get, Param, Query, Req, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiParam, ApiQuery, ApiTags } from '@nestjs/swagger';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { AuthenticatedUser } from '../auth/authenticated-user.js';
import { CurrentUser } from '../auth/current-user.decorator.js';
import { FhirInteraction, RequirePermission } from '../auth/permission.decorators.js';
import { fhirBaseUrl, sendFhirJson } from './fhir-headers.js';
import { TYPE_PARAM } from './fhir-swagger.js';
import { FhirHistory } from './fhir-history.service.js';
import { PageCursors } from './cursor.js';
import { historyListParams, historyParams, MAX_HISTORY_COUNT } from './history-params.js';

/** What every history takes (history-params.ts), listed so that Swagger UI can send it. */
const HistoryQuery = (): MethodDecorator =>
  applyDecorators(
    ApiQuery({
      name: '_count',
      required: false,
      description: `Versions per page, at most ${MAX_HISTORY_COUNT}`,
    }),
    ApiQuery({
      name: '_since',
      required: false,
      description: 'Only versions written at or after this instant, e.g. 2026-01-01T00:00:00Z',
    }),
    ApiQuery({
      name: '_at',
      required: false,
      description: 'Versions current at some time in this period, e.g. 2026-03-01 or ge2026-03-01',
    }),
  );

/** History Bundles of the system, a type and one resource (one version is a vread). */
@ApiTags('FHIR')
@ApiBearerAuth()
@Controller('fhir')
export class HistoryController {
  constructor(
    private readonly histories: FhirHistory,
    private readonly cursors: PageCursors,
  ) {}

  @Get('_history')
  @RequirePermission('fhir:system')
  @ApiOperation({
    summary: 'History of every resource of the types you may read (Bundle, newest first)',
  })
  @HistoryQuery()
  async systemHistory(
    @CurrentUser() user: AuthenticatedUser,
    @Query() query: Record<string, unknown>,
    @Req() request: FastifyRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<unknown> {
    return sendFhirJson(
      reply,
      await this.histories.systemHistory(
        user,
        historyListParams(query, this.cursors.for(user, 'history')),
        fhirBaseUrl(request),
      ),
    );
  }

  @Get(':type/_history')
  @FhirInteraction('history')
  @ApiOperation({ summary: 'History of every resource of a type (Bundle, newest first)' })
  @ApiParam(TYPE_PARAM)
  @HistoryQuery()
  async typeHistory(
    @CurrentUser() user: AuthenticatedUser,
    @Param('type') type: string,
    @Query() query: Record<string, unknown>,
    @Req() request: FastifyRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<unknown> {
    return sendFhirJson(
      reply,
      await this.histories.typeHistory(
        user,
        type,
        historyListParams(query, this.cursors.for(user, 'history')),
        fhirBaseUrl(request),
      ),
    );
  }

  @Get(':type/:id/_history')
  @FhirInteraction('history')
  @ApiOperation({ summary: 'Every version of one resource (history Bundle)' })
  @ApiParam(TYPE_PARAM)
  @HistoryQuery()
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
      await this.histories.history(
        user,
        type,
        id,
        historyParams(query, type, id, this.cursors.for(user, 'history')),
        fhirBaseUrl(request),
      ),
    );
  }
}
