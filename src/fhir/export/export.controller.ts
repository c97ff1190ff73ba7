import { Readable } from 'node:stream';
import {
  applyDecorators,
  Controller,
  Delete,
  Get,
  HttpCode,
  Param,
  Req,
  Res,
} from '@nestjs/common';
import {
  ApiBearerAuth,
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
import { unencodedPlus } from '../../common/http/media-types.js';
import { parseIsoDateOrInstant } from '../../common/iso-dates.js';
import { fhirBaseUrl } from '../fhir-headers.js';
import { ExportService, type ExportLevel, type ExportManifest } from './export.service.js';

const NDJSON_FORMATS = new Set(['application/fhir+ndjson', 'application/ndjson', 'ndjson']);
/** Kick-off parameters this server takes; any other is refused rather than ignored. */
const PARAMETERS = new Set(['_outputFormat', '_type', '_since', '_typeFilter']);
/** How long the owner of a running export is told to wait before kicking off another. */
const RETRY_AFTER_RUNNING_SECONDS = 30;
const INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

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

/** A kick-off route: the export right (RIGHT), an MFA of the last five minutes, 202. */
const KickOff = (path: string, level: ExportLevel, summary: string): MethodDecorator =>
  applyDecorators(
    Get(path),
    RIGHT[level],
    RequireRecentMfa(),
    HttpCode(202),
    ApiOperation({ summary }),
    ApiHeader({ name: 'Prefer', required: true, description: 'respond-async' }),
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
    ApiResponse({ status: 202, description: 'Accepted; Content-Location is the status URL' }),
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

  @KickOff('Patient/$export', 'patient', "Export every patient's compartment (async, NDJSON)")
  patients(
    @CurrentUser() user: AuthenticatedUser,
    @Req() request: FastifyRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<void> {
    return this.kickOff(user, 'patient', undefined, request, reply);
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

  private async kickOff(
    user: AuthenticatedUser,
    level: ExportLevel,
    groupId: string | undefined,
    request: FastifyRequest,
    reply: FastifyReply,
  ): Promise<void> {
    if (!/(^|[,;\s])respond-async\b/.test(String(request.headers['prefer'] ?? ''))) {
      throw AppError.invalid('Bulk export is asynchronous: send Prefer: respond-async');
    }
    const query = (request.query ?? {}) as Record<string, unknown>;
    for (const [name, value] of Object.entries(query)) {
      if (!PARAMETERS.has(name)) {
        throw AppError.of(400, 'not-supported', `The export parameter ${name} is not supported`);
      }
      if (typeof value !== 'string' && name !== '_typeFilter') {
        throw AppError.invalid(`${name} may be given once`, [name]);
      }
    }
    // A plus written unencoded reads as a space: application/fhir+ndjson (which the Bulk Data IG
    // requires servers to take) and an offset such as +01:00 come as clients write them.
    const format = plus(query['_outputFormat']);
    if (format !== undefined && !NDJSON_FORMATS.has(format)) {
      throw AppError.of(400, 'not-supported', 'The only output format is application/fhir+ndjson');
    }
    const since = plus(query['_since']);
    // Checked against the calendar: Date.parse takes 2026-02-30 for March 2nd.
    if (since !== undefined && (!INSTANT.test(since) || !parseIsoDateOrInstant(since))) {
      throw AppError.invalid('_since must be an instant such as 2026-01-01T00:00:00Z', ['_since']);
    }
    // A type named twice is exported once (its file would otherwise be written twice).
    const type = query['_type'] as string | undefined;
    const types =
      type === undefined ? undefined : [...new Set(type.split(',').map((t) => t.trim()))];
    const typeFilters = typeFiltersOf(request.url);
    const baseUrl = fhirBaseUrl(request);
    const id = await this.exports
      .start(user, {
        level,
        ...(groupId !== undefined ? { groupId } : {}),
        ...(types ? { types } : {}),
        ...(typeFilters.length > 0 ? { typeFilters } : {}),
        ...(since !== undefined ? { since: new Date(since) } : {}),
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

function plus(value: unknown): string | undefined {
  return typeof value === 'string' ? unencodedPlus(value) : undefined;
}

/**
 * `_typeFilter` values, from the raw query string: the parameter is a comma-separated list of
 * URL-encoded queries (`Observation%3Fcode%3D…,Condition%3F…`), so it is split before it is
 * decoded, and a comma inside one query (`code=a%2Cb`) stays in it. It may also be repeated.
 */
function typeFiltersOf(url: string): string[] {
  const query = url.includes('?') ? url.slice(url.indexOf('?') + 1) : '';
  return query
    .split('&')
    .filter((part) => part.startsWith('_typeFilter='))
    .flatMap((part) => part.slice('_typeFilter='.length).split(','))
    .map((filter) => decodeURIComponent(filter.replace(/\+/g, ' ')))
    .filter((filter) => filter.length > 0);
}
