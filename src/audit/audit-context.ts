import { Injectable } from '@nestjs/common';
import { AsyncLocalStorage } from 'node:async_hooks';

/** Who acted, when the request itself carries no verified token (a login). */
export interface AuditActor {
  id: string;
  name: string;
  roles: string[];
  /** The SMART client asking for a token (a backend client, an app), once it is known. */
  clientId?: string;
}

/**
 * What one request touched, filled in while it runs: the resources that passed an access
 * check (read, listed, written or denied) and the patients they belong to.
 */
export class AuditScope {
  readonly entities = new Set<string>();
  readonly patients = new Set<string>();
  /** Resources the request named (`Type/id`) that are not stored, never were: see forget. */
  readonly unstored = new Set<string>();
  /** The first resource touched: the event's resource when it touches one. */
  primary: { type: string; id: string; version: string | null } | undefined;
  breakGlass = false;
  actor: AuditActor | undefined;
  /**
   * Set for a batch Bundle, whose entries commit one by one: writes one entry's own row inside
   * that entry's transaction, so that no entry is kept without a row naming it.
   */
  recordPart: ((part: AuditScope, outcome: AuditPart) => Promise<void>) | undefined;
}

/** What a batch entry's own row says beyond what it touched: its interaction and result. */
export interface AuditPart {
  method: string;
  /** The FHIR interaction (`read`, `search`, …), which a GET entry's method does not say. */
  interaction?: string;
  /** The type the entry addressed: a row of an entry refused before it touched anything. */
  type?: string;
  status: number;
  /** The version the entry left current (its ETag), when it wrote one resource. */
  version: string | null;
}

/** The request's AuditScope, reachable from any service the request calls. */
@Injectable()
export class AuditContext {
  private readonly storage = new AsyncLocalStorage<AuditScope>();

  run<T>(scope: AuditScope, work: () => T): T {
    return this.storage.run(scope, work);
  }

  get current(): AuditScope | undefined {
    return this.storage.getStore();
  }

  /**
   * Runs work that outlives the request (a job it starts) under no scope: what the work
   * touches would otherwise be added to the request's scope after its row was written, and
   * held as long as the work runs. Such work records its own rows.
   */
  detached<T>(work: () => T): T {
    return this.storage.exit(work);
  }

  /**
   * Runs one entry of a batch Bundle under a scope of its own. A write calls `record` last in
   * the entry's transaction, so the entry and its row commit together; an entry that fails
   * calls it after (a failure row of its own). What an entry touched without a row of its own
   * (a read that succeeded) is named in the request's row. Anywhere but a batch request this
   * only runs the work.
   */
  async part<T>(work: (record: (outcome: AuditPart) => Promise<void>) => Promise<T>): Promise<T> {
    const parent = this.current;
    const recordPart = parent?.recordPart;
    if (!parent || !recordPart) {
      return work(() => Promise.resolve());
    }
    const part = new AuditScope();
    part.actor = parent.actor;
    let written = false;
    let committed = false;
    try {
      const result = await this.storage.run(part, () =>
        work(async (outcome) => {
          await recordPart(part, outcome);
          written = true;
        }),
      );
      committed = written;
      return result;
    } finally {
      if (!committed) {
        parent.primary ??= part.primary;
        for (const entity of part.entities) parent.entities.add(entity);
        for (const patient of part.patients) parent.patients.add(patient);
      }
      parent.breakGlass ||= part.breakGlass;
    }
  }

  /** A resource the request touched, with the patients whose compartment holds it. */
  touch(
    resource: { resourceType: string; id?: unknown; meta?: unknown },
    patients: string[],
  ): void {
    const scope = this.current;
    if (!scope || typeof resource.id !== 'string') {
      return;
    }
    // What turned out not to be stored stays out, whichever is learnt first (see forget).
    if (scope.unstored.has(`${resource.resourceType}/${resource.id}`)) return;
    const version = (resource.meta as { versionId?: unknown } | undefined)?.versionId;
    const versionId = typeof version === 'string' ? version : null;
    scope.primary ??= { type: resource.resourceType, id: resource.id, version: versionId };
    scope.entities.add(`${resource.resourceType}/${resource.id}`);
    for (const patient of patients) {
      if (!scope.unstored.has(`Patient/${patient}`)) scope.patients.add(patient);
    }
  }

  /**
   * Resources (`Type/id`) a request named that turned out not to exist (a reference to a
   * patient that is not stored): their ids say nothing of a record, and may be an MRN or a
   * name typed in an id's place, which an audit row must not keep.
   */
  forget(references: readonly string[]): void {
    const scope = this.current;
    if (!scope) return;
    for (const reference of references) {
      scope.unstored.add(reference);
      scope.entities.delete(reference);
      if (reference.startsWith('Patient/')) scope.patients.delete(reference.slice(8));
      if (scope.primary && `${scope.primary.type}/${scope.primary.id}` === reference) {
        scope.primary = undefined;
      }
    }
  }

  touchPatient(patientId: string): void {
    if (!this.current?.unstored.has(`Patient/${patientId}`)) this.current?.patients.add(patientId);
  }

  markBreakGlass(): void {
    if (this.current) {
      this.current.breakGlass = true;
    }
  }

  setActor(actor: AuditActor): void {
    if (this.current) {
      this.current.actor = actor;
    }
  }
}
