import { Controller, Get, Req, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Public } from '../auth/permission.decorators.js';
import { requestOrigin } from '../common/http/request-origin.js';
import { SOFTWARE_VERSION } from '../common/software.js';
import { AppConfig } from '../config/config.js';
import { restSecurity, SmartConfiguration } from '../smart/smart-configuration.js';
import {
  buildCapabilityStatement,
  capabilityResources,
  FHIR_VERSIONS,
} from './capability-statement.js';
import { FhirDefinitions } from './fhir-definitions.js';
import { fhirBaseUrl, sendFhirJson } from './fhir-headers.js';
import { SearchDefinitions } from './search/search-definitions.js';

/** What the server offers: the CapabilityStatement and the FHIR versions served. Public. */
@ApiTags('FHIR')
@ApiBearerAuth()
@Controller('fhir')
export class CapabilityController {
  /** What each resource type supports, for /metadata: fixed once the definitions are loaded. */
  private readonly capabilities: object[];

  constructor(
    definitions: FhirDefinitions,
    searchDefinitions: SearchDefinitions,
    private readonly smart: SmartConfiguration,
    private readonly config: AppConfig,
  ) {
    this.capabilities = capabilityResources(
      definitions.restfulTypes,
      searchDefinitions,
      config.referentialIntegrity,
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
}
