import { randomUUID } from 'node:crypto';
import { mkdir, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Injectable, Logger, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import { ResourceAccess } from '../../access/resource-access.js';
import { PatientCompartment } from '../../access/patient-compartment.js';
import { AuditTrail } from '../../audit/audit-trail.js';
import type { AuthenticatedUser } from '../../auth/authenticated-user.js';
import { canAccessFhir } from '../../auth/permissions.js';
import { scopesAllow } from '../../auth/smart-scopes.js';
import { AppError } from '../../common/errors/app-error.js';
import { AppConfig } from '../../config/config.js';
import { FieldCipher } from '../../crypto/field-cipher.js';
import { PhiSubscriber } from '../../crypto/phi.subscriber.js';
import { FhirDefinitions } from '../fhir-definitions.js';
import type { FhirResource } from '../fhir-types.js';
import { FhirService } from '../fhir.service.js';
import { ResourceEntity } from '../resource.entity.js';
import { ResourceRepository } from '../resource.repository.js';
import { exportAuditEntry } from './export-audit.js';
import { decryptedLines, EncryptedNdjsonWriter } from './export-files.js';

export type ExportLevel = 'system' | 'patient' | 'group';

export interface ExportRequest {
  level: ExportLevel;
  groupId?: string;
  /** `_type`: undefined for every type the user may export. */
  types?: string[];
  since?: Date;
  /** The kick-off URL, echoed in the manifest (it holds no PHI: types, a date, a Group id). */
  requestUrl: string;
  requestId: string;
  baseUrl: string;
}

interface ExportFile {
  type: string;
  /** The file's name in the job's folder and its URL. */
  name: string;
  count: number;
  /** The patients whose data the file holds: the download's audit row names them. */
  patients: string[];
}

interface ExportJob {
  id: string;
  user: AuthenticatedUser;
  request: ExportRequest;
  transactionTime: Date;
  status: 'in-progress' | 'completed' | 'failed';
  progress: string;
  files: ExportFile[];
  /** OperationOutcomes for resources left out (they did not decrypt): the manifest's `error`. */
  errors?: ExportFile;
  /** The patients it is confined to: all of them (`any`), a Group's, or none for a system export. */
  cohort: Cohort;
  expiresAt?: number;
  abort: AbortController;
}

type Cohort = Set<string> | 'any' | undefined;

export interface ExportManifest {
  transactionTime: string;
  request: string;
  requiresAccessToken: true;
  output: { type: string; url: string; count: number }[];
  error: { type: 'OperationOutcome'; url: string; count: number }[];
}

const PAGE = 500;
const SWEEP_MS = 10_000;

/**
 * FHIR Bulk Data export (Bulk Data Access 2.0): jobs run in this process, write one encrypted
 * NDJSON file per type under DATA_DIR/exports, and are removed EXPORT_RETENTION_SECONDS after
 * they complete, or when cancelled. Jobs live in memory: a restart loses the ones in flight
 * (their clients get 404 and start again), and the sweeper removes the files left behind.
 */
@Injectable()
export class ExportService implements OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger('Export');
  private readonly jobs = new Map<string, ExportJob>();
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
  ) {}

  private get root(): string {
    return join(this.config.dataDir, 'exports');
  }

  async onModuleInit(): Promise<void> {
    await this.sweep();
    this.sweeper = setInterval(() => void this.sweep(), SWEEP_MS).unref();
  }

  /** A stopping service takes its jobs' files with it: nothing could serve them afterwards. */
  async onModuleDestroy(): Promise<void> {
    clearInterval(this.sweeper);
    for (const job of this.jobs.values()) {
      job.abort.abort();
      await rm(join(this.root, job.id), { recursive: true, force: true });
    }
    this.jobs.clear();
  }

  /** Checks the request (and reads the Group) and starts the job; its id names the status URL. */
  async start(user: AuthenticatedUser, request: ExportRequest): Promise<string> {
    for (const type of request.types ?? []) {
      if (!this.definitions.isResourceType(type)) {
        throw AppError.invalid(`_type names an unknown resource type: ${type}`, ['_type']);
      }
      if (!this.mayExport(user, type)) {
        throw AppError.forbidden(`You may not export ${type}`);
      }
    }
    if (
      [...this.jobs.values()].some((job) => job.user.id === user.id && job.status === 'in-progress')
    ) {
      throw AppError.of(
        429,
        'throttled',
        'An export of yours is still running: wait for it or cancel it',
      );
    }
    const cohort = await this.cohort(user, request);
    const job: ExportJob = {
      id: randomUUID(),
      user,
      request,
      cohort,
      transactionTime: new Date(),
      status: 'in-progress',
      progress: 'starting',
      files: [],
      abort: new AbortController(),
    };
    this.jobs.set(job.id, job);
    void this.run(job);
    return job.id;
  }

  /** 'in-progress' with a progress text, or the manifest; 404 for anyone but the job's owner. */
  status(user: AuthenticatedUser, id: string): { progress: string } | { manifest: ExportManifest } {
    const job = this.owned(user, id);
    if (job.status === 'failed') {
      throw AppError.of(500, 'exception', 'The export failed; start a new one');
    }
    if (job.status === 'in-progress') {
      return { progress: job.progress };
    }
    return {
      manifest: {
        transactionTime: job.transactionTime.toISOString(),
        request: job.request.requestUrl,
        requiresAccessToken: true,
        output: job.files.map((file) => ({
          type: file.type,
          url: `${job.request.baseUrl}/$export-file/${job.id}/${file.name}`,
          count: file.count,
        })),
        error: job.errors
          ? [
              {
                type: 'OperationOutcome',
                url: `${job.request.baseUrl}/$export-file/${job.id}/${job.errors.name}`,
                count: job.errors.count,
              },
            ]
          : [],
      },
    };
  }

  /** Cancels a running export or deletes a finished one's files. */
  async cancel(user: AuthenticatedUser, id: string): Promise<void> {
    const job = this.owned(user, id);
    job.abort.abort();
    this.jobs.delete(id);
    await rm(join(this.root, job.id), { recursive: true, force: true });
  }

  /** One output file, decrypted as it is sent, and the patients it holds (for the audit row). */
  file(
    user: AuthenticatedUser,
    id: string,
    name: string,
  ): { lines: AsyncGenerator<string>; patients: string[] } {
    const job = this.owned(user, id);
    const file = [...job.files, ...(job.errors ? [job.errors] : [])].find(
      (candidate) => candidate.name === name,
    );
    if (job.status !== 'completed' || !file) {
      throw AppError.notFound('No such export file');
    }
    return {
      lines: decryptedLines(join(this.root, job.id, file.name), this.cipher, job.id, file.type),
      patients: file.patients,
    };
  }

  private owned(user: AuthenticatedUser, id: string): ExportJob {
    const job = this.jobs.get(id);
    if (job && (job.expiresAt ?? Infinity) <= Date.now()) {
      // Expired: gone now, not at the sweeper's next round.
      this.jobs.delete(id);
      void rm(join(this.root, id), { recursive: true, force: true });
      throw AppError.notFound('No such export');
    }
    if (!job || job.user.id !== user.id) {
      throw AppError.notFound('No such export');
    }
    return job;
  }

  private mayExport(user: AuthenticatedUser, type: string): boolean {
    return (
      canAccessFhir(user.roles, type, 'export') &&
      scopesAllow(user.scopes, user.patient !== undefined, type, 'export')
    );
  }

  private async run(job: ExportJob): Promise<void> {
    const dir = join(this.root, job.id);
    const everyone = new Set<string>();
    try {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      const unreadable: string[] = [];
      for (const type of await this.typesOf(job)) {
        if (job.abort.signal.aborted) return;
        job.progress = `exporting ${type}`;
        const file = await this.exportType(job, type, dir, unreadable);
        if (file.count > 0) job.files.push(file);
        for (const patient of file.patients) everyone.add(patient);
      }
      if (unreadable.length > 0) {
        job.errors = await this.writeErrors(job, dir, unreadable);
      }
      job.status = 'completed';
      job.progress = 'completed';
      job.expiresAt = Date.now() + this.config.exportRetentionSeconds * 1000;
      await this.trail.record(exportAuditEntry(job, [...everyone], 'success'));
    } catch (error) {
      job.status = 'failed';
      this.logger.error(
        { err: { message: (error as Error).message }, job: job.id },
        'Export failed',
      );
      await rm(dir, { recursive: true, force: true });
      await this.trail
        .record(exportAuditEntry(job, [...everyone], 'failure'))
        .catch(() => undefined);
    }
  }

  /** The patients an export is confined to: a Group's members are read (and checked) at kick-off. */
  private async cohort(user: AuthenticatedUser, request: ExportRequest): Promise<Cohort> {
    if (request.level === 'system') return undefined;
    if (request.level === 'patient') return 'any';
    const group = (await this.fhir.read(user, 'Group', request.groupId!)).resource;
    const members = ((group as { member?: unknown }).member ?? []) as {
      entity?: { reference?: string };
    }[];
    return new Set(
      members.flatMap((member) => {
        const match = /^Patient\/([A-Za-z0-9.-]{1,64})$/.exec(member.entity?.reference ?? '');
        return match ? [match[1]!] : [];
      }),
    );
  }

  /** `_type`, or every type with data that the user may export; patient exports: compartment types. */
  private async typesOf(job: ExportJob): Promise<string[]> {
    const types = job.request.types ?? (await this.resources.typesInUse());
    return types.filter(
      (type) =>
        this.mayExport(job.user, type) &&
        (job.request.level === 'system' ||
          type === 'Patient' ||
          this.compartment.hasCompartment(type)),
    );
  }

  /**
   * One type's file. A resource that does not decrypt (its key is not held here, or its value
   * was altered) is left out and named in `unreadable`, rather than failing the whole export.
   */
  private async exportType(
    job: ExportJob,
    type: string,
    dir: string,
    unreadable: string[],
  ): Promise<ExportFile> {
    const name = `${type}.ndjson`;
    const writer = new EncryptedNdjsonWriter(join(dir, name), this.cipher, job.id, type);
    const patients = new Set<string>();
    try {
      let after = '';
      for (;;) {
        if (job.abort.signal.aborted) break;
        const rows = await this.resources.encryptedPageOfType(type, after, job.request.since, PAGE);
        for (const row of rows) {
          let resource: FhirResource;
          try {
            const content = this.phi.decrypted(ResourceEntity, row).content as string;
            resource = JSON.parse(content) as FhirResource;
          } catch {
            unreadable.push(`${type}/${row.id}`);
            continue;
          }
          const holders = this.compartment.patientsOf(resource);
          if (!this.included(job.user, resource, holders, job.cohort)) continue;
          await writer.write(resource);
          for (const patient of holders) patients.add(patient);
        }
        if (rows.length < PAGE) break;
        after = rows.at(-1)!.id;
      }
    } finally {
      await writer.close();
    }
    return { type, name, count: writer.count, patients: [...patients] };
  }

  /** The manifest's error file: one OperationOutcome per resource left out (ids only, no PHI). */
  private async writeErrors(
    job: ExportJob,
    dir: string,
    unreadable: string[],
  ): Promise<ExportFile> {
    this.logger.warn(
      { job: job.id, count: unreadable.length, first: unreadable[0] },
      'Export left out resources that do not decrypt',
    );
    const name = 'errors.ndjson';
    const writer = new EncryptedNdjsonWriter(
      join(dir, name),
      this.cipher,
      job.id,
      'OperationOutcome',
    );
    try {
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
    } finally {
      await writer.close();
    }
    return { type: 'OperationOutcome', name, count: writer.count, patients: [] };
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
  ): boolean {
    if (!this.access.isListable(user, resource)) return false;
    if (cohort === undefined) return true;
    if (cohort === 'any') return holders.length > 0;
    return holders.some((patient) => cohort.has(patient));
  }

  /**
   * Removes expired jobs, and folders that no job of this process owns once they are older than
   * the retention period: left by a process that crashed, or by another instance on the same
   * DATA_DIR whose own sweeper would have removed them by then.
   */
  private async sweep(): Promise<void> {
    const now = Date.now();
    for (const job of [...this.jobs.values()]) {
      if (job.expiresAt !== undefined && job.expiresAt <= now) {
        this.jobs.delete(job.id);
        await rm(join(this.root, job.id), { recursive: true, force: true });
      }
    }
    const folders = await readdir(this.root).catch(() => [] as string[]);
    for (const folder of folders) {
      if (this.jobs.has(folder)) continue;
      const path = join(this.root, folder);
      const changed = (await stat(path).catch(() => undefined))?.mtimeMs ?? now;
      if (now - changed > this.config.exportRetentionSeconds * 1000) {
        await rm(path, { recursive: true, force: true });
      }
    }
  }
}
