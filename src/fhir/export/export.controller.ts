import { Readable } from 'node:stream';
import {
  applyDecorators,
  Body,
  Controller,
  Delete,
  Get,
  HttpCode,
  Param,
  Post,
  Req,
  Res,
} from '@nestjs/common';
import {
  ApiBearerAuth,
  ApiBody,
  ApiHeader,
  ApiOperation,
  ApiQuery,
  ApiResponse,
  ApiTags,
} from '@nestjs/swagger';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { AuditContext } from '../../audit/audit-context.js';
import type { AuthenticatedUser } from '../../auth/authenticated-user.js';
import { CurrentUser } from '../../auth/current-user.decorator.js';
import {
  FhirInteraction,
  RequirePermission,
  RequireRecentMfa,
} from '../../auth/permission.decorators.js';
import { AppError } from '../../common/errors/app-error.js';
import { fhirBaseUrl } from '../fhir-headers.js';
import type { ExportLevel, ExportManifest } from './export-job.js';
import { ExportService } from './export.service.js';
import { bodyParameters, queryParameters, type KickOffParameters } from './kick-off-parameters.js';

/** How long the owner of a running export is told to wait before kicking off another. */
const RETRY_AFTER_RUNNING_SECONDS = 30;

/**
 * Who may kick off an export of each level (each type it takes is checked by the service too).
 * A system-level export is of types: the export right on any one type opens it, as the Bulk
 * Data IG's system level is for a client registered for some types (`system/Observation.rs`).
 * Patient- and Group-level exports are about patients: whatever types they take, they choose
 * what goes in by patient (every patient's compartment, or the Group's members'), so they are
 * operations on the Patient type (the IG's OperationDefinitions patient-export and group-export
 * take the patient compartment), as `Patient/{id}/$everything` is a read of Patient; they need
 * the export right on Patient, and a Group's export its read of the Group as well.
 */
const RIGHT: Record<ExportLevel, MethodDecorator> = {
  system: RequirePermission('fhir:system'),
  patient: FhirInteraction('export', 'Patient'),
  group: FhirInteraction('export', 'Patient'),
};

/** A kick-off route's common part: the export right (RIGHT), an MFA of the last five minutes. */
const KickOffBase = (level: ExportLevel, summary: string): MethodDecorator =>
  applyDecorators(
    RIGHT[level],
    RequireRecentMfa(),
    HttpCode(202),
    ApiOperation({ summary }),
    ApiHeader({ name: 'Prefer', required: true, description: 'respond-async' }),
    ApiResponse({ status: 202, description: 'Accepted; Content-Location is the status URL' }),
  );

/** A GET kick-off route, its parameters in the query. */
const KickOff = (path: string, level: ExportLevel, summary: string): MethodDecorator =>
  applyDecorators(
    Get(path),
    KickOffBase(level, summary),
    ApiQuery({ name: '_type', required: false, description: 'Comma-separated resource types' }),
    ApiQuery({
      name: '_since',
      required: false,
      description: 'Only what changed after this instant',
    }),
    ApiQuery({
      name: '_typeFilter',
      required: false,
      description:
        'URL-encoded searches, comma-separated, e.g. Observation%3Fcategory%3Dlaboratory',
    }),
    ApiQuery({ name: '_outputFormat', required: false, description: 'application/fhir+ndjson' }),
  );

/**
 * A POST kick-off route (Bulk Data IG 2.0), its parameters in a Parameters body: the same as a
 * GET's, and `patient` (for Patient- and Group-level exports), which only a POST can carry.
 */
const KickOffByPost = (path: string, level: ExportLevel, summary: string): MethodDecorator =>
  applyDecorators(
    Post(path),
    KickOffBase(level, summary),
    ApiBody({
      description:
        'Parameters: _outputFormat, _since (valueInstant), _type, _typeFilter (valueString), patient (valueReference)',
      schema: { type: 'object', example: { resourceType: 'Parameters', parameter: [] } },
    }),
  );

/**
 * FHIR Bulk Data Access 2.0 export: kick-off (202 and a status URL), status polling, the NDJSON
 * files, and DELETE to cancel. Starting an export needs the export permission (RIGHT) and an MFA
 * of the last five minutes; polling and downloading need the export right on some type (the
 * service checks it) and are open only to the user who started it, with a token of the same
 * scopes and patient.
 */
@ApiTags('Bulk Data export')
@ApiBearerAuth()
@Controller('fhir')
export class ExportController {
  constructor(
    private readonly exports: ExportService,
    private readonly audit: AuditContext,
  ) {}

  @KickOff('$export', 'system', 'System-level export of every type you may export (async, NDJSON)')
  system(
    @CurrentUser() user: AuthenticatedUser,
    @Req() request: FastifyRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<void> {
    return this.kickOff(user, 'system', undefined, request, reply);
  }

  @KickOffByPost('$export', 'system', 'System-level export, parameters in a Parameters body')
  systemByPost(
    @CurrentUser() user: AuthenticatedUser,
    @Body() body: unknown,
    @Req() request: FastifyRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<void> {
    return this.kickOff(user, 'system', undefined, request, reply, body);
  }

  @KickOff('Patient/$export', 'patient', "Export every patient's compartment (async, NDJSON)")
  patients(
    @CurrentUser() user: AuthenticatedUser,
    @Req() request: FastifyRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<void> {
    return this.kickOff(user, 'patient', undefined, request, reply);
  }

  @KickOffByPost(
    'Patient/$export',
    'patient',
    "Export patients' compartments (all, or those `patient` names), parameters in a body",
  )
  patientsByPost(
    @CurrentUser() user: AuthenticatedUser,
    @Body() body: unknown,
    @Req() request: FastifyRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<void> {
    return this.kickOff(user, 'patient', undefined, request, reply, body);
  }

  @KickOff(
    'Group/:id/$export',
    'group',
    "Export the compartments of a Group's patient members (async, NDJSON)",
  )
  group(
    @CurrentUser() user: AuthenticatedUser,
    @Param('id') id: string,
    @Req() request: FastifyRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<void> {
    return this.kickOff(user, 'group', id, request, reply);
  }

  @KickOffByPost(
    'Group/:id/$export',
    'group',
    "Export a Group's patient members (all, or those `patient` names), parameters in a body",
  )
  groupByPost(
    @CurrentUser() user: AuthenticatedUser,
    @Param('id') id: string,
    @Body() body: unknown,
    @Req() request: FastifyRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<void> {
    return this.kickOff(user, 'group', id, request, reply, body);
  }

  @Get('$export-status/:job')
  @RequirePermission('fhir:system')
  @ApiOperation({
    summary: 'Export status: 202 with X-Progress while running, 200 with the manifest',
  })
  async status(
    @CurrentUser() user: AuthenticatedUser,
    @Param('job') job: string,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<ExportManifest | undefined> {
    const status = await this.exports.status(user, job);
    if ('progress' in status) {
      void reply.status(202).header('x-progress', status.progress).header('retry-after', '2');
      return undefined;
    }
    void reply.header('content-type', 'application/json').header('cache-control', 'no-store');
    // The Bulk Data IG's optional Expires: when the files are removed (their retention).
    if (status.expires) void reply.header('expires', status.expires.toUTCString());
    return status.manifest;
  }

  @Delete('$export-status/:job')
  @RequirePermission('fhir:system')
  @HttpCode(202)
  @ApiOperation({ summary: 'Cancel an export, or delete a finished one and its files' })
  async cancel(@CurrentUser() user: AuthenticatedUser, @Param('job') job: string): Promise<void> {
    await this.exports.cancel(user, job);
  }

  @Get('$export-file/:job/:file')
  @RequirePermission('fhir:system')
  @ApiOperation({ summary: 'One NDJSON file of a finished export (decrypted as it is sent)' })
  async file(
    @CurrentUser() user: AuthenticatedUser,
    @Param('job') job: string,
    @Param('file') name: string,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<Readable> {
    const file = await this.exports.file(user, job, name);
    // The download is the disclosure: its audit row names every patient in the file.
    for (const patient of file.patients) this.audit.touchPatient(patient);
    void reply
      .header('content-type', 'application/fhir+ndjson')
      .header('cache-control', 'no-store');
    return Readable.from(file.lines);
  }

  /** `body` is a POST's Parameters; a GET's parameters are in its query. */
  private async kickOff(
    user: AuthenticatedUser,
    level: ExportLevel,
    groupId: string | undefined,
    request: FastifyRequest,
    reply: FastifyReply,
    body?: unknown,
  ): Promise<void> {
    if (!/(^|[,;\s])respond-async\b/.test(String(request.headers['prefer'] ?? ''))) {
      throw AppError.invalid('Bulk export is asynchronous: send Prefer: respond-async');
    }
    const query = (request.query ?? {}) as Record<string, unknown>;
    let parameters: KickOffParameters;
    if (request.method === 'POST') {
      if (Object.keys(query).length > 0) {
        throw AppError.invalid('A POST kick-off takes its parameters in its body, not the URL');
      }
      parameters = bodyParameters(body, level);
    } else {
      parameters = queryParameters(query, request.url);
    }
    const baseUrl = fhirBaseUrl(request);
    const { types, typeFilters, since, patients } = parameters;
    const id = await this.exports
      .start(user, {
        level,
        ...(groupId !== undefined ? { groupId } : {}),
        ...(types ? { types } : {}),
        ...(typeFilters.length > 0 ? { typeFilters } : {}),
        ...(since !== undefined ? { since } : {}),
        ...(patients ? { patients } : {}),
        // A POST's URL, as the IG has the manifest echo it, without its parameters: a
        // patient's id stays out of the job's row.
        requestUrl: `${baseUrl}${request.url.replace(/^\/fhir/, '')}`,
        requestId: String(request.id),
        baseUrl,
      })
      .catch((error: unknown) => {
        // An export of theirs still runs: when to try again, as every 429 here says.
        if (error instanceof AppError && error.status === 429) {
          void reply.header('retry-after', String(RETRY_AFTER_RUNNING_SECONDS));
        }
        throw error;
      });
    void reply.header('content-location', `${baseUrl}/$export-status/${id}`);
  }
}
