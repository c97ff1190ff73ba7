import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Injectable, Logger, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import { isRestrictedIn, ResourceAccess } from '../../access/resource-access.js';
import { PatientCompartment } from '../../access/patient-compartment.js';
import { AuditContext } from '../../audit/audit-context.js';
import { AuditTrail } from '../../audit/audit-trail.js';
import type { AuthenticatedUser } from '../../auth/authenticated-user.js';
import { AppConfig } from '../../config/config.js';
import { FieldCipher } from '../../crypto/field-cipher.js';
import { PhiSubscriber } from '../../crypto/phi.subscriber.js';
import type { FhirResource } from '../fhir-types.js';
import { ResourceEntity } from '../resource.entity.js';
import { ResourceHistoryEntity } from '../resource-history.entity.js';
import { ResourceRepository, type VersionAt } from '../resource.repository.js';
import { parseContent } from '../resource-versions.js';
import { SecurityContexts } from '../security-contexts.js';
import { SearchService } from '../search/search.service.js';
import { withoutWriteOnly } from '../write-only-elements.js';
import { exportAuditEntry } from './export-audit.js';
import { EncryptedNdjsonWriter, ERRORS_FILE, ExportStopped } from './export-files.js';
import { FAILED, mayExport, type Cohort, type RunningJob } from './export-job.js';
import { ExportRepository, INTERRUPTED, type ExportFileRow } from './export.repository.js';

/** A resource as it stood at the transactionTime, and the record now when it changed since. */
interface Snapshot {
  resource: FhirResource;
  latest?: FhirResource;
}

const PAGE = 500;
/**
 * Characters of ciphertext one page of reads aims at: the page size follows the resources'
 * size, so that a type of large ones (documents in Binary) is read a few at a time, not 500
 * at once (half a gigabyte of Binaries of 1 MB, held two or three times over while converted).
 */
const PAGE_CHARACTERS = 32 * 1024 * 1024;
/** The first page of a type, before its resources' size is known. */
const FIRST_PAGE = 50;
const SWEEP_MS = 10_000;

/**
 * Runs the export jobs taken by this process: reads each type page by page as it stood at the
 * job's transactionTime, writes its encrypted NDJSON file, and keeps the job alive in
 * export_job; every instance also sweeps out expired and abandoned jobs.
 */
@Injectable()
export class ExportRunner implements OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger('Export');
  private readonly running = new Map<string, RunningJob>();
  private sweeper: NodeJS.Timeout | undefined;

  constructor(
    private readonly config: AppConfig,
    private readonly resources: ResourceRepository,
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

  /** Runs a job whose row is in export_job, in the background. */
  launch(job: RunningJob): void {
    this.running.set(job.id, job);
    // Not in the kick-off request's audit scope: each resource exported would be added to it
    // (its row written with the 202), and held until the job ends. The job records its own row.
    this.audit.detached(() => void this.run(job));
  }

  /** Stops a job if this process runs it (its rows are the caller's to delete). */
  abort(id: string): void {
    this.running.get(id)?.abort.abort();
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

  private async run(job: RunningJob): Promise<void> {
    const everyone = new Set<string>();
    try {
      const unreadable: string[] = [];
      for (const type of await this.typesOf(job)) {
        const file = await this.exportType(job, type, unreadable, everyone);
        if (job.abort.signal.aborted) return;
        if (file.count > 0) job.files.push(file);
      }
      // The sessions may have ended while the last page was read and stored: not completed then.
      await this.assertSessionsLive(job);
      if (unreadable.length > 0) {
        job.files.push(await this.writeErrors(job, unreadable));
      }
      if (!(await this.store.complete(job.id, job.files, this.config.exportRetentionSeconds))) {
        return; // Cancelled while it finished.
      }
      await this.trail.record(exportAuditEntry(job, [...everyone], 'success'));
    } catch (error) {
      if (error instanceof SessionsEnded) {
        await this.trail
          .record(exportAuditEntry(job, [...everyone], 'failure'))
          .catch(() => undefined);
        return;
      }
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
   * stillRunning before each page a job reads: a job whose account was disabled, or whose
   * sessions ended (a new password, an MFA reset), would read PHI on into files that no token
   * can open any more. It is failed and its lines dropped (SessionsEnded) instead.
   */
  private async mayReadOn(job: RunningJob, progress: string): Promise<boolean> {
    await this.assertSessionsLive(job);
    return this.stillRunning(job, progress);
  }

  private async assertSessionsLive(job: RunningJob): Promise<void> {
    if (!job.abort.signal.aborted && (await this.store.failIfSessionsEnded(job.id))) {
      throw new SessionsEnded();
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
   * `_type`, or every type with data that the user may export; patient exports: compartment
   * types, and the Binaries (documents) their securityContexts place in a compartment.
   */
  private async typesOf(job: RunningJob): Promise<string[]> {
    const types = job.request.types ?? (await this.resources.typesLiveAt(job.transactionTime));
    return types.filter(
      (type) =>
        mayExport(job.user, type) &&
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
    for (let page = 1; await this.mayReadOn(job, `exporting ${type} (page ${page})`); page++) {
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

/** A running job's account was disabled or its sessions ended: the job was failed for it. */
class SessionsEnded extends Error {}

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
