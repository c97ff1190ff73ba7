import { Controller, Get, Param, Query, Req, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { AuthenticatedUser } from '../auth/authenticated-user.js';
import { CurrentUser } from '../auth/current-user.decorator.js';
import { FhirInteraction } from '../auth/permission.decorators.js';
import { PageCursors } from '../fhir/cursor.js';
import { fhirBaseUrl, sendFhirJson, sendVersion } from '../fhir/fhir-headers.js';
import { historyParams } from '../fhir/history-params.js';
import { AuditEventService } from './audit-event.service.js';

type Query = Record<string, string | string[] | undefined>;

/** The raw query: search parameters are FHIR's, not a DTO for the validation pipe. */
function queryOf(request: FastifyRequest): Query {
  return (request.query ?? {}) as Query;
}

/** The audit trail as FHIR AuditEvent resources: read-only, for auditors and administrators. */
@ApiTags('Audit')
@ApiBearerAuth()
@Controller('fhir')
export class AuditEventController {
  constructor(
    private readonly events: AuditEventService,
    private readonly cursors: PageCursors,
  ) {}

  @Get('AuditEvent')
  @FhirInteraction('search', 'AuditEvent')
  @ApiOperation({
    summary:
      'Search the audit trail (patient, agent, entity, date, action, outcome, subtype; newest first)',
  })
  async search(
    @Req() request: FastifyRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<unknown> {
    return sendFhirJson(reply, await this.events.search(queryOf(request), fhirBaseUrl(request)));
  }

  @Get('AuditEvent/:id')
  @FhirInteraction('read', 'AuditEvent')
  @ApiOperation({ summary: 'Read one audit event' })
  async read(
    @Param('id') id: string,
    @Req() request: FastifyRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<unknown> {
    return sendVersion(reply, request, await this.events.read(id));
  }

  // Reading an event's history or its one version is reading the event: the same right.
  @Get('AuditEvent/:id/_history')
  @FhirInteraction('read', 'AuditEvent')
  @ApiOperation({ summary: 'History of one audit event: its one version (never changed)' })
  async history(
    @CurrentUser() user: AuthenticatedUser,
    @Param('id') id: string,
    @Query() query: Record<string, unknown>,
    @Req() request: FastifyRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<unknown> {
    return sendFhirJson(
      reply,
      await this.events.history(
        id,
        historyParams(query, 'AuditEvent', id, this.cursors.for(user, 'history')),
        this.cursors.for(user, 'history'),
        fhirBaseUrl(request),
      ),
    );
  }

  @Get('AuditEvent/:id/_history/:vid')
  @FhirInteraction('read', 'AuditEvent')
  @ApiOperation({ summary: 'Read an audit event by version (1, its only one)' })
  async vread(
    @Param('id') id: string,
    @Param('vid') versionId: string,
    @Req() request: FastifyRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<unknown> {
    return sendVersion(reply, request, await this.events.vread(id, versionId));
  }

  @Get('Patient/:id/$audit-trail')
  @FhirInteraction('search', 'AuditEvent')
  @ApiOperation({
    summary: "Accounting of disclosures: everyone who touched this patient's records, newest first",
  })
  async patientTrail(
    @Param('id') id: string,
    @Req() request: FastifyRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<unknown> {
    return sendFhirJson(
      reply,
      await this.events.patientTrail(id, queryOf(request), fhirBaseUrl(request)),
    );
  }
}
