import { Controller, Get, Param, Req, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { FhirInteraction } from '../auth/permission.decorators.js';
import { fhirBaseUrl, sendFhirJson } from '../fhir/fhir-headers.js';
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
  constructor(private readonly events: AuditEventService) {}

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
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<unknown> {
    return sendFhirJson(reply, await this.events.read(id));
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
