import { randomUUID } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Injectable, Logger, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import { isRestrictedIn, ResourceAccess } from '../../access/resource-access.js';
import { PatientCompartment } from '../../access/patient-compartment.js';
import { AuditContext } from '../../audit/audit-context.js';
import { AuditTrail } from '../../audit/audit-trail.js';
import type { AuthenticatedUser } from '../../auth/authenticated-user.js';
import { mayUseFhir } from '../../auth/permissions.js';
import { AppError } from '../../common/errors/app-error.js';
import { isUuid } from '../../common/ids.js';
import { AppConfig } from '../../config/config.js';
import { FieldCipher } from '../../crypto/field-cipher.js';
import { PhiSubscriber } from '../../crypto/phi.subscriber.js';
import { FhirDefinitions } from '../fhir-definitions.js';
import type { FhirResource } from '../fhir-types.js';
import { FhirService } from '../fhir.service.js';
import { ResourceEntity } from '../resource.entity.js';
import { ResourceHistoryEntity } from '../resource-history.entity.js';
import { ResourceRepository, type VersionAt } from '../resource.repository.js';
import { parseContent } from '../resource-versions.js';
import { SecurityContexts } from '../security-contexts.js';
import { SearchService } from '../search/search.service.js';
import { exportAuditEntry } from './export-audit.js';
import { exportOwnerOf, ownsExport } from './export-owner.js';
import { groupMembers } from './group-members.js';
import {
  decryptedLines,
  EncryptedNdjsonWriter,
  ERRORS_FILE,
  ExportStopped,
} from './export-files.js';
import {
  ExportRepository,
  INTERRUPTED,
  type ExportFileRow,
  type ExportJobRow,
} from './export.repository.js';
import { withoutWriteOnly } from '../write-only-elements.js';

export type ExportLevel = 'system' | 'patient' | 'group';

export interface ExportRequest {
  level: ExportLevel;
  groupId?: string;
  /** `_type`: undefined for every type the user may export. */
  types?: string[];
  /** `_typeFilter`: `Type?query` each; a type with filters exports what matches one of them. */
  typeFilters?: string[];
  since?: Date;
  /** `patient` (a POST's): the ids of the patients whose compartments a Patient- or
   * Group-level export is confined to. */
  patients?: string[];
  /** The kick-off URL, echoed in the manifest (it holds no PHI: types, a date, a Group id). */
  requestUrl: string;
  requestId: string;
  baseUrl: string;
}

/** A job running in this process: what its reads need beyond its row in export_job. */
interface RunningJob {
  id: string;
  user: AuthenticatedUser;
  request: ExportRequest;
  /** The instant the export reflects: each resource as it stood then (see exportType). */
  transactionTime: Date;
  /** The patients it is confined to: all of them (`any`), a Group's, or none for a system export. */
  cohort: Cohort;
  /** `_typeFilter` queries by type. */
  filters: Map<string, string[]>;
  progress: string;
  files: ExportFileRow[];
  abort: AbortController;
}

type Cohort = Set<string> | 'any' | undefined;

/** A resource as it stood at the transactionTime, and the record now when it changed since. */
interface Snapshot {
  resource: FhirResource;
  latest?: FhirResource;
}

export interface ExportManifest {
  transactionTime: string;
  request: string;
  requiresAccessToken: true;
  output: { type: string; url: string; count: number }[];
  error: { type: 'OperationOutcome'; url: string; count: number }[];
}

const PAGE = 500;
/** Search parameters that narrow what a resource shows: no export honours them (see typeFilters). */
const CONTENT_PARAMETERS = new Set(['_elements', '_summary']);
/**
 * Characters of ciphertext one page of reads aims at: the page size follows the resources'
 * size, so that a type of large ones (documents in Binary) is read a few at a time, not 500
 * at once (half a gigabyte of Binaries of 1 MB, held two or three times over while converted).
 */
const PAGE_CHARACTERS = 32 * 1024 * 1024;
/** The first page of a type, before its resources' size is known. */
const FIRST_PAGE = 50;
const SWEEP_MS = 10_000;
/** A running job not heard from for this long is taken for interrupted (its instance stopped). */
const STALE_SECONDS = 60;
const FAILED = 'The export failed; start a new one';

/**
 * FHIR Bulk Data export (Bulk Data Access 2.0). A job runs in the process that took the
 * kick-off and writes one encrypted NDJSON file per type into PostgreSQL (export_job,
 * export_chunk), so any instance answers its status polls and downloads. A job's files are
 * removed EXPORT_RETENTION_SECONDS after it completes, or when it is cancelled. A job whose
 * process stops is reported as interrupted (it cannot be resumed: the caller's token and access
 * rules were in that process), and its owner may start a new one at once.
 */
@Injectable()
export class ExportService implements OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger('Export');
  private readonly running = new Map<string, RunningJob>();
  private sweeper: NodeJS.Timeout | undefined;

  constructor(
    private readonly config: AppConfig,
    private readonly resources: ResourceRepository,
    private readonly fhir: FhirService,
    private readonly definitions: FhirDefinitions,
    private readonly compartment: PatientCompartment,
    private readonly access: ResourceAccess,
    private readonly cipher: FieldCipher,
    private readonly phi: PhiSubscriber,
    private readonly trail: AuditTrail,
    private readonly audit: AuditContext,
    private readonly store: ExportRepository,
    private readonly searches: SearchService,
    private readonly contexts: SecurityContexts,
  ) {}

  async onModuleInit(): Promise<void> {
    // Versions before migration 1765000000000 kept export files here; none can be served now.
    await rm(join(this.config.dataDir, 'exports'), { recursive: true, force: true }).catch(
      (error: Error) =>
        this.logger.warn({ err: { message: error.message } }, 'Old export files not removed'),
    );
    await this.sweep();
    this.sweeper = setInterval(() => void this.sweep(), SWEEP_MS).unref();
  }

  /** A stopping service cannot finish its jobs: their owners are told at their next poll. */
  async onModuleDestroy(): Promise<void> {
    clearInterval(this.sweeper);
    for (const job of this.running.values()) {
      job.abort.abort();
      await this.store.fail(job.id, INTERRUPTED).catch(() => undefined);
    }
    this.running.clear();
  }

  /** Checks the request (and reads the Group) and starts the job; its id names the status URL. */
  async start(user: AuthenticatedUser, request: ExportRequest): Promise<string> {
    this.assertMayExport(user);
    for (const type of request.types ?? []) {
      if (!this.definitions.isResourceType(type)) {
        throw AppError.invalid(`_type names an unknown resource type: ${type}`, ['_type']);
      }
      if (!this.mayExport(user, type)) {
        throw AppError.forbidden(`You may not export ${type}`);
      }
    }
    const filters = await this.typeFilters(user, request);
    // The instant the export reflects: the manifest's transactionTime, and when a Group's
    // members are taken as they stand. Not now: a version stamped before now may be in a
    // transaction that commits after this export reads its type, and the next export, _since
    // this one, would leave it out too. Every version stamped before this instant is committed.
    const transactionTime = await this.resources.completeUpTo();
    const cohort = await this.cohort(user, request, transactionTime);
    const job: RunningJob = {
      id: randomUUID(),
      user,
      request,
      transactionTime,
      filters,
      cohort,
      progress: 'starting',
      files: [],
      abort: new AbortController(),
    };
    const started = await this.store.insert(
      {
        id: job.id,
        ...exportOwnerOf(user),
        level: request.level,
        transactionTime,
        requestUrl: request.requestUrl,
        baseUrl: request.baseUrl,
      },
      STALE_SECONDS,
    );
    if (!started) {
      throw AppError.of(
        429,
        'throttled',
        'An export of yours is still running: wait for it or cancel it',
      );
    }
    this.running.set(job.id, job);
    // Not in the kick-off request's audit scope: each resource exported would be added to it
    // (its row written with the 202), and held until the job ends. The job records its own row.
    this.audit.detached(() => void this.run(job));
    return job.id;
  }

  /**
   * 'in-progress' with a progress text, or the manifest; 404 for anyone but the job's owner (its
   * user, with a token of the scopes and patient that started it).
   */
  async status(
    user: AuthenticatedUser,
    id: string,
  ): Promise<{ progress: string } | { manifest: ExportManifest; expires: Date | null }> {
    const job = await this.owned(user, id);
    if (
      job.status === 'failed' ||
      (job.stale && (await this.store.failIfStale(id, STALE_SECONDS)))
    ) {
      throw AppError.of(500, 'exception', job.failure ?? (job.stale ? INTERRUPTED : FAILED));
    }
    if (job.status === 'in-progress') {
      return { progress: job.progress };
    }
    const url = (file: ExportFileRow) => `${job.baseUrl}/$export-file/${job.id}/${file.name}`;
    return {
      expires: job.expiresAt,
      manifest: {
        transactionTime: job.transactionTime.toISOString(),
        request: job.requestUrl,
        requiresAccessToken: true,
        output: job.files
          .filter((file) => file.name !== ERRORS_FILE)
          .map((file) => ({ type: file.type, url: url(file), count: file.count })),
        error: job.files
          .filter((file) => file.name === ERRORS_FILE)
          .map((file) => ({ type: 'OperationOutcome', url: url(file), count: file.count })),
      },
    };
  }

  /** Cancels a running export (wherever it runs) or deletes a finished one's files. */
  async cancel(user: AuthenticatedUser, id: string): Promise<void> {
    await this.owned(user, id);
    this.running.get(id)?.abort.abort();
    await this.store.delete(id);
  }

  /** One output file, decrypted as it is sent, and the patients it holds (for the audit row). */
  async file(
    user: AuthenticatedUser,
    id: string,
    name: string,
  ): Promise<{ lines: AsyncGenerator<string>; patients: string[] }> {
    const job = await this.owned(user, id);
    const file = job.files.find((candidate) => candidate.name === name);
    if (job.status !== 'completed' || !file) {
      throw AppError.notFound('No such export file');
    }
    // keys:rotate re-encrypts export files too; one left under a key retired since (written
    // after the rotation by an instance that had not met the new key) cannot be read: it is
    // gone, said before the download starts, rather than a 500 or a file cut short.
    const keys = await this.store.keyIdsOf(job.id, file.name);
    if (!keys.every((keyId) => this.cipher.canDecryptUnder(keyId))) {
      throw AppError.gone(
        'This export file was encrypted under a PHI key that has since been retired: start a new export',
      );
    }
    return {
      lines: decryptedLines(this.store, this.cipher, job.id, file.name, file.type, file.count),
      patients: await this.store.patientsOf(job.id, file.name),
    };
  }

  private async owned(user: AuthenticatedUser, id: string): Promise<ExportJobRow> {
    this.assertMayExport(user);
    // Job ids are UUIDs: anything else cannot exist (and would be a type error in SQL).
    const job = isUuid(id) ? await this.store.find(id, STALE_SECONDS) : undefined;
    if (!job || !ownsExport(user, job)) {
      throw AppError.notFound('No such export');
    }
    if (job.expired) {
      // Gone now, not at the sweeper's next round.
      await this.store.delete(id);
      throw AppError.notFound('No such export');
    }
    return job;
  }

  /**
   * The `_typeFilter` queries by type, each a search of one type the export takes that the user
   * could run (else 400, 403).
   */
  private async typeFilters(
    user: AuthenticatedUser,
    request: ExportRequest,
  ): Promise<Map<string, string[]>> {
    const byType = new Map<string, string[]>();
    for (const filter of request.typeFilters ?? []) {
      const question = filter.indexOf('?');
      const type = question === -1 ? filter : filter.slice(0, question);
      const query = question === -1 ? '' : filter.slice(question + 1);
      if (!this.definitions.isResourceType(type) || !query) {
        throw AppError.invalid('_typeFilter is a list of searches such as Observation?code=…', [
          '_typeFilter',
        ]);
      }
      if (request.types && !request.types.includes(type)) {
        throw AppError.invalid(`_typeFilter names ${type}, which _type leaves out`, [
          '_typeFilter',
        ]);
      }
      if (!this.mayExport(user, type)) throw AppError.forbidden(`You may not export ${type}`);
      // A search would narrow the resources' content; the export holds them whole, and a client
      // asking for less (minimum necessary) is told so rather than sent more than it asked.
      for (const name of new URLSearchParams(query).keys()) {
        if (CONTENT_PARAMETERS.has(name.split(':')[0]!)) {
          throw AppError.invalid(
            `_typeFilter selects resources, it does not narrow them: ${name} is not supported`,
            ['_typeFilter'],
          );
        }
      }
      await this.searches.assertCriteria(user, type, query);
      byType.set(type, [...(byType.get(type) ?? []), query]);
    }
    return byType;
  }

  /** The ids among `ids` that one of the type's filters matches, or undefined when it has none. */
  private async filtered(
    job: RunningJob,
    type: string,
    ids: string[],
  ): Promise<Set<string> | undefined> {
    const filters = job.filters.get(type);
    if (!filters || ids.length === 0) return undefined;
    const matched = new Set<string>();
    for (const query of filters) {
      for (const id of await this.searches.matchingAmong(job.user, type, query, ids)) {
        matched.add(id);
      }
    }
    return matched;
  }

  private mayExport(user: AuthenticatedUser, type: string): boolean {
    return mayUseFhir(user, type, 'export');
  }

  /**
   * The export routes are open to anyone with the export right on some type (the routes of a
   * Patient or Group export require it on Patient): no right at all is a 403, as the permission
   * guard answers, before the job is looked for.
   */
  private assertMayExport(user: AuthenticatedUser): void {
    if (!this.definitions.resourceTypes.some((type) => this.mayExport(user, type))) {
      throw AppError.forbidden('Access denied');
    }
  }

  private async run(job: RunningJob): Promise<void> {
    const everyone = new Set<string>();
    try {
      const unreadable: string[] = [];
      for (const type of await this.typesOf(job)) {
        const file = await this.exportType(job, type, unreadable, everyone);
        if (job.abort.signal.aborted) return;
        if (file.count > 0) job.files.push(file);
      }
      if (unreadable.length > 0) {
        job.files.push(await this.writeErrors(job, unreadable));
      }
      if (!(await this.store.complete(job.id, job.files, this.config.exportRetentionSeconds))) {
        return; // Cancelled while it finished.
      }
      await this.trail.record(exportAuditEntry(job, [...everyone], 'success'));
    } catch (error) {
      // A job cancelled or stopped meanwhile has nothing more to report.
      if (job.abort.signal.aborted || error instanceof ExportStopped) return;
      this.logger.error(
        { err: { message: (error as Error).message }, job: job.id },
        'Export failed',
      );
      await this.store.fail(job.id, FAILED).catch(() => undefined);
      await this.trail
        .record(exportAuditEntry(job, [...everyone], 'failure'))
        .catch(() => undefined);
    } finally {
      this.running.delete(job.id);
    }
  }

  /**
   * Records progress and that this process still runs the job; false (and the job aborted) when
   * it was cancelled, possibly through another instance.
   */
  private async stillRunning(job: RunningJob, progress: string): Promise<boolean> {
    job.progress = progress;
    if (!job.abort.signal.aborted && !(await this.store.heartbeat(job.id, progress))) {
      job.abort.abort();
    }
    return !job.abort.signal.aborted;
  }

  /**
   * The patients an export is confined to: a Group's members are read (and checked) at kick-off,
   * those who are members at `now` (see groupMembers); `patient` narrows either level to the
   * patients it names. One not on this server, or not a member of the Group, is a 400 that
   * names it, as the Bulk Data IG asks, rather than an export quietly without them.
   */
  private async cohort(
    user: AuthenticatedUser,
    request: ExportRequest,
    now: Date,
  ): Promise<Cohort> {
    if (request.level === 'system') return undefined;
    const named = request.patients && (await this.storedPatients(request.patients));
    if (request.level === 'patient') return named ?? 'any';
    const group = (await this.fhir.read(user, 'Group', request.groupId!)).resource;
    const members = new Set(groupMembers(group, now));
    if (!named) return members;
    const outside = [...named].filter((id) => !members.has(id));
    if (outside.length > 0) {
      throw AppError.invalid(
        `patient names ${references(outside)}, not a member of Group/${request.groupId!}`,
        ['patient'],
      );
    }
    return named;
  }

  /**
   * The patients named, each checked to be stored and not deleted. Not opened as a read would:
   * a restricted patient's record stays out of the files as it does from any export, while the
   * rest of their compartment (each record restricted on its own) goes in.
   */
  private async storedPatients(ids: string[]): Promise<Set<string>> {
    const missing: string[] = [];
    for (const id of ids) {
      const row = await this.resources.findCurrent('Patient', id);
      if (!row || row.deleted) missing.push(id);
    }
    if (missing.length > 0) {
      throw AppError.invalid(`patient names ${references(missing)}, not on this server`, [
        'patient',
      ]);
    }
    return new Set(ids);
  }

  /**
   * `_type`, or every type with data that the user may export; patient exports: compartment
   * types, and the Binaries (documents) their securityContexts place in a compartment.
   */
  private async typesOf(job: RunningJob): Promise<string[]> {
    const types = job.request.types ?? (await this.resources.typesLiveAt(job.transactionTime));
    return types.filter(
      (type) =>
        this.mayExport(job.user, type) &&
        (job.request.level === 'system' ||
          type === 'Patient' ||
          type === 'Binary' ||
          this.compartment.hasCompartment(type)),
    );
  }

  /**
   * One type's file. A resource that does not decrypt (its key is not held here, or its value
   * was altered) is left out and named in `unreadable`, rather than failing the whole export.
   */
  private async exportType(
    job: RunningJob,
    type: string,
    unreadable: string[],
    everyone: Set<string>,
  ): Promise<ExportFileRow> {
    const name = `${type}.ndjson`;
    const writer = new EncryptedNdjsonWriter(this.store, this.cipher, job.id, name, type);
    let after = '';
    let limit = FIRST_PAGE;
    for (let page = 1; await this.stillRunning(job, `exporting ${type} (page ${page})`); page++) {
      // The export holds the data as it stood at its transactionTime (the Bulk Data IG): a
      // resource changed or deleted since goes in as it was then, one created since stays out,
      // and the export that follows (_since this one's transactionTime) has the changes.
      const rows = await this.resources.encryptedPageAt(
        type,
        after,
        { ...(job.request.since ? { since: job.request.since } : {}), at: job.transactionTime },
        limit,
      );
      const matched = await this.filtered(
        job,
        type,
        rows.map((row) => row.version.id),
      );
      const versions: Snapshot[] = [];
      for (const row of rows) {
        if (matched && !matched.has(row.version.id)) continue;
        try {
          versions.push(this.decrypted(row));
        } catch {
          unreadable.push(`${type}/${row.version.id}`);
        }
      }
      const contexts = await this.contexts.of(
        versions.flatMap(({ resource, latest }) => (latest ? [resource, latest] : [resource])),
      );
      for (const { resource, latest } of versions) {
        // A version opens as the record does now, or did before its deletion (vread, history):
        // one written before the record was restricted stays out with it.
        if (latest && isRestrictedIn(latest, contexts.get(latest))) continue;
        const context = contexts.get(resource);
        const holders = this.access.patientsOf(resource, context);
        if (!this.included(job.user, resource, holders, job.cohort, context)) {
          continue;
        }
        await writer.write(resource, holders);
        for (const patient of holders) everyone.add(patient);
      }
      if (rows.length < limit) break;
      after = rows.at(-1)!.version.id;
      limit = nextPageSize(rows);
    }
    // A cancelled job's rows are gone: there is nothing left to add to.
    if (!job.abort.signal.aborted) await writer.close();
    return { type, name, count: writer.count };
  }

  /**
   * A resource as the export takes it, decrypted (this throws for a value that does not): the
   * version then, as every read shows it, and the latest with content when it changed since.
   */
  private decrypted({ version, current, latest }: VersionAt): Snapshot {
    const then = current
      ? this.phi.decrypted(ResourceEntity, version)
      : this.phi.decrypted(ResourceHistoryEntity, version);
    const resource = withoutWriteOnly(parseContent(then));
    return latest
      ? { resource, latest: parseContent(this.phi.decrypted(ResourceHistoryEntity, latest)) }
      : { resource };
  }

  /** The manifest's error file: one OperationOutcome per resource left out (ids only, no PHI). */
  private async writeErrors(job: RunningJob, unreadable: string[]): Promise<ExportFileRow> {
    this.logger.warn(
      { job: job.id, count: unreadable.length, first: unreadable[0] },
      'Export left out resources that do not decrypt',
    );
    const type = 'OperationOutcome';
    const writer = new EncryptedNdjsonWriter(this.store, this.cipher, job.id, ERRORS_FILE, type);
    for (const reference of unreadable) {
      await writer.write({
        resourceType: 'OperationOutcome',
        issue: [
          {
            severity: 'error',
            code: 'exception',
            diagnostics: `${reference} could not be decrypted with the keys this server holds (a key it does not have, or an altered value): it is not in this export`,
            expression: [reference],
          },
        ],
      });
    }
    await writer.close();
    return { type, name: ERRORS_FILE, count: writer.count };
  }

  /**
   * Restricted records stay out (they open only through break-glass, one at a time), as do
   * records outside a patient-scoped token's compartment and, for patient and group exports,
   * outside the cohort's compartments.
   */
  private included(
    user: AuthenticatedUser,
    resource: FhirResource,
    holders: string[],
    cohort: Cohort,
    context: FhirResource | undefined,
  ): boolean {
    if (!this.access.isListable(user, resource, true, context, 'export')) return false;
    if (cohort === undefined) return true;
    if (cohort === 'any') return holders.length > 0;
    return holders.some((patient) => cohort.has(patient));
  }

  /**
   * Keeps this process's running jobs alive (a page can take a while), and removes expired
   * jobs and abandoned ones: every instance does, whichever gets there first.
   */
  private async sweep(): Promise<void> {
    try {
      for (const job of this.running.values()) await this.stillRunning(job, job.progress);
      await this.store.sweep(this.config.exportRetentionSeconds);
    } catch (error) {
      // The database may be down for a while; the next round tries again.
      this.logger.warn({ err: { message: (error as Error).message } }, 'Export sweep failed');
    }
  }
}

/** The next page's size: as many resources as PAGE_CHARACTERS hold, by this page's average. */
function nextPageSize(rows: VersionAt[]): number {
  const characters = rows.reduce(
    (sum, { version, latest }) =>
      sum + (version.content?.length ?? 0) + (latest?.content?.length ?? 0),
    0,
  );
  const fitting = Math.floor((rows.length * PAGE_CHARACTERS) / Math.max(characters, 1));
  return Math.min(PAGE, Math.max(1, fitting));
}

/** `Patient/a, Patient/b`: ids, never PHI. */
function references(ids: string[]): string {
  return ids.map((id) => `Patient/${id}`).join(', ');
}
