import { randomUUID } from 'node:crypto';
import { Injectable } from '@nestjs/common';
import type { AuthenticatedUser } from '../../auth/authenticated-user.js';
import { AppError } from '../../common/errors/app-error.js';
import { isUuid } from '../../common/ids.js';
import { FieldCipher } from '../../crypto/field-cipher.js';
import { FhirDefinitions } from '../fhir-definitions.js';
import { ResourceRepository } from '../resource.repository.js';
import { ExportCriteria } from './export-criteria.js';
import { decryptedLines, ERRORS_FILE } from './export-files.js';
import {
  FAILED,
  mayExport,
  type ExportManifest,
  type ExportRequest,
  type RunningJob,
} from './export-job.js';
import { exportOwnerOf, ownsExport } from './export-owner.js';
import { ExportRunner } from './export-runner.js';
import {
  ExportRepository,
  INTERRUPTED,
  type ExportFileRow,
  type ExportJobRow,
} from './export.repository.js';

/** A running job not heard from for this long is taken for interrupted (its instance stopped). */
const STALE_SECONDS = 60;

/**
 * FHIR Bulk Data export (Bulk Data Access 2.0). A job runs in the process that took the
 * kick-off and writes one encrypted NDJSON file per type into PostgreSQL (export_job,
 * export_chunk), so any instance answers its status polls and downloads. A job's files are
 * removed EXPORT_RETENTION_SECONDS after it completes, or when it is cancelled. A job whose
 * process stops is reported as interrupted (it cannot be resumed: the caller's token and access
 * rules were in that process), and its owner may start a new one at once.
 */
@Injectable()
export class ExportService {
  constructor(
    private readonly resources: ResourceRepository,
    private readonly definitions: FhirDefinitions,
    private readonly cipher: FieldCipher,
    private readonly store: ExportRepository,
    private readonly criteria: ExportCriteria,
    private readonly runner: ExportRunner,
  ) {}

  /** Checks the request (and reads the Group) and starts the job; its id names the status URL. */
  async start(user: AuthenticatedUser, request: ExportRequest): Promise<string> {
    this.criteria.assertMayExport(user);
    for (const type of request.types ?? []) {
      if (!this.definitions.isResourceType(type)) {
        throw AppError.invalid(`_type names an unknown resource type: ${type}`, ['_type']);
      }
      if (!mayExport(user, type)) {
        throw AppError.forbidden(`You may not export ${type}`);
      }
    }
    const filters = await this.criteria.typeFilters(user, request);
    // The instant the export reflects: the manifest's transactionTime, and when a Group's
    // members are taken as they stand. Not now: a version stamped before now may be in a
    // transaction that commits after this export reads its type, and the next export, _since
    // this one, would leave it out too. Every version stamped before this instant is committed.
    const transactionTime = await this.resources.completeUpTo();
    const cohort = await this.criteria.cohort(user, request, transactionTime);
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
    this.runner.launch(job);
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
    this.runner.abort(id);
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
    this.criteria.assertMayExport(user);
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
}
