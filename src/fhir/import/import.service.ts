import { Injectable } from '@nestjs/common';
import { AuditContext, AuditScope } from '../../audit/audit-context.js';
import { AuditTrail } from '../../audit/audit-trail.js';
import { cliAuditEntry } from '../../audit/cli-audit.js';
import type { AuthenticatedUser } from '../../auth/authenticated-user.js';
import { AppError } from '../../common/errors/app-error.js';
import { databaseProblem } from '../../database/database-unavailable.js';
import { UnitOfWork } from '../../database/unit-of-work.js';
import { BundleService } from '../bundle/bundle.service.js';
import { ResourceRepository } from '../resource.repository.js';
import type { ImportUnit } from './import-sources.js';

/**
 * Who writes what `cli import` loads: a system account with the integration role, so that the
 * permission matrix applies as it does to the HL7 feed (no AuditEvents, no deletes). The audit
 * rows name the operating-system user who ran the command.
 */
export const IMPORT_USER: AuthenticatedUser = {
  id: 'import',
  username: 'import',
  roles: ['integration'],
  amr: [],
  authTime: 0,
  loadsRecords: true,
};

/**
 * How often a write the database rolled back and asked to be retried (a deadlock or a
 * serialization failure with a clinician's write, a pool or a server that could not serve for a
 * moment) is sent, with a pause that grows between tries.
 */
const ATTEMPTS = 4;
const PAUSE_MS = 500;

/** The base URL of the Bundle responses, which the import reads only for statuses. */
const BASE_URL = 'urn:carevault:import';

/** An entry refused, with where it came from and why (no PHI: server diagnostics only). */
export interface Refusal {
  where: string;
  status: string;
  reason: string;
}

export interface UnitResult {
  /** Entries written or matched. */
  written: number;
  rejected: Refusal[];
  /**
   * Batch entries refused only because a resource they refer to is not stored (yet): an NDJSON
   * export holds one file per type, and Observation.ndjson comes before Patient.ndjson. The
   * import sends them again once the rest is in.
   */
  deferred: (Refusal & { entry: ImportEntry })[];
}

type ImportEntry = NonNullable<ImportUnit['bundle']['entry']>[number];

/**
 * Loads Bundles in-process, as POST /fhir would: a transaction all or nothing, a batch entry by
 * entry. Each Bundle gets its audit row, naming the resources and patients it wrote; a
 * transaction's row commits with its resources.
 */
@Injectable()
export class ImportService {
  constructor(
    private readonly bundles: BundleService,
    private readonly context: AuditContext,
    private readonly trail: AuditTrail,
    private readonly unitOfWork: UnitOfWork,
    private readonly resources: ResourceRepository,
  ) {}

  /** After a load: searches are planned for the tables as they are now (see ResourceRepository). */
  analyze(): Promise<void> {
    return this.resources.analyze();
  }

  /**
   * Loads a unit. What the database rolled back for a reason that may clear (a deadlock with a
   * concurrent write, a restart) is sent again, ATTEMPTS times in all: a transaction whole, a
   * batch's entries that were answered 503. Before, one deadlock with a clinician's write
   * stopped an overnight load (a transaction) or rejected the line (a batch).
   */
  async load(unit: ImportUnit, attempt = 1): Promise<UnitResult> {
    const last = attempt >= ATTEMPTS;
    let result: UnitResult & { transient: number[] };
    try {
      result = await this.loadOnce(unit, last);
    } catch (error) {
      // A batch that failed whole may have stored some of its entries: not sent again.
      if (last || unit.bundle.type !== 'transaction' || !isTransient(error)) throw error;
      await pause(attempt);
      return this.load(unit, attempt + 1);
    }
    const { transient: again, ...done } = result;
    if (again.length === 0) return done;
    await pause(attempt);
    // The entries to send again, as a batch of their own, reported where they came from.
    const retried = await this.load(
      {
        source: unit.source,
        bundle: { ...unit.bundle, entry: again.map((index) => unit.bundle.entry![index]!) },
        where: (index) => unit.where(again[index]!),
      },
      attempt + 1,
    );
    return {
      written: done.written + retried.written,
      rejected: [...done.rejected, ...retried.rejected],
      deferred: [...done.deferred, ...retried.deferred],
    };
  }

  private async loadOnce(
    unit: ImportUnit,
    last: boolean,
  ): Promise<UnitResult & { transient: number[] }> {
    const scope = new AuditScope();
    const entries = unit.bundle.entry?.length ?? 0;
    const entry = (outcome: 'success' | 'failure', detail: string) =>
      cliAuditEntry('import', {
        subtype: `import-${unit.bundle.type}`,
        actorRoles: IMPORT_USER.roles,
        patientIds: [...scope.patients],
        entities: [...scope.entities],
        outcome,
        detail,
      });
    if (unit.bundle.type === 'transaction') {
      try {
        await this.context.run(scope, () =>
          this.unitOfWork.run(async () => {
            await this.bundles.process(IMPORT_USER, unit.bundle, BASE_URL);
            await this.trail.recordInTransaction(entry('success', `entries=${entries}`));
          }),
        );
        return { written: entries, rejected: [], deferred: [], transient: [] };
      } catch (error) {
        if (!(error instanceof AppError)) throw error;
        await this.trail.record(entry('failure', `entries=${entries} status=${error.status}`));
        return { written: 0, rejected: [rejection(error, unit)], deferred: [], transient: [] };
      }
    }
    const response = await this.context.run(scope, () =>
      this.bundles.process(IMPORT_USER, unit.bundle, BASE_URL),
    );
    const rejected: UnitResult['rejected'] = [];
    const deferred: UnitResult['deferred'] = [];
    const transient: number[] = [];
    (response.entry as BatchResponseEntry[]).forEach((result, index) => {
      if (result.response.status.startsWith('2')) return;
      const issues = result.response.outcome?.issue ?? [];
      // Rolled back by the database for a reason that may clear (error-response.ts).
      const mayClear = issues.some((i) => i.code === 'transient' || i.code === 'throttled');
      if (!last && result.response.status === '503' && mayClear) {
        transient.push(index);
        return;
      }
      const refusal = {
        where: unit.where(index),
        status: result.response.status,
        reason: reasons(issues),
      };
      // A reference to a resource that is not stored: 400 not-found (reference-integrity.ts).
      const missingTarget = issues.length > 0 && issues.every((i) => i.code === 'not-found');
      if (refusal.status === '400' && missingTarget) {
        deferred.push({ ...refusal, entry: unit.bundle.entry![index]! });
      } else {
        rejected.push(refusal);
      }
    });
    const refused = rejected.length + deferred.length + transient.length;
    await this.trail.record(
      entry(
        refused === 0 ? 'success' : 'failure',
        `entries=${entries} rejected=${rejected.length} deferred=${deferred.length}` +
          (transient.length > 0 ? ` retried=${transient.length}` : ''),
      ),
    );
    return { written: entries - refused, rejected, deferred, transient };
  }
}

/** A failure of the database that the same write may not meet again (database-unavailable.ts). */
function isTransient(error: unknown): boolean {
  const problem = databaseProblem(error);
  return problem === 'conflict' || problem === 'busy' || problem === 'unavailable';
}

function pause(attempt: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, PAUSE_MS * attempt));
}

interface Issue {
  code?: string;
  diagnostics?: string;
  expression?: string[];
}

interface BatchResponseEntry {
  response: { status: string; outcome?: { issue?: Issue[] } };
}

const ENTRY_LABEL = /^Bundle\.entry\[\d+\]:\s*/;

/**
 * The server's reasons with the elements they concern, without its `Bundle.entry[n]: ` label
 * (the report says where instead).
 */
function reasons(issues: readonly Issue[]): string {
  const text = issues.map((issue) => {
    const diagnostics = (issue.diagnostics ?? '').replace(ENTRY_LABEL, '');
    const where = (issue.expression ?? []).filter((path) => !path.startsWith('Bundle.'));
    return where.length > 0 ? `${diagnostics} (${where.join(', ')})` : diagnostics;
  });
  return text.join('; ') || 'rejected';
}

/** A failed transaction: the server names the entry (`Bundle.entry[3]: ...`); so does the report. */
function rejection(error: AppError, unit: ImportUnit): UnitResult['rejected'][number] {
  const index = /^Bundle\.entry\[(\d+)\]/.exec(error.message)?.[1];
  return {
    where: index === undefined ? 'bundle' : unit.where(Number(index)),
    status: String(error.status),
    reason: reasons(error.issues),
  };
}
