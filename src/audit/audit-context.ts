import { Injectable } from '@nestjs/common';
import { AsyncLocalStorage } from 'node:async_hooks';

/** Who acted, when the request itself carries no verified token (a login). */
export interface AuditActor {
  id: string;
  name: string;
  roles: string[];
}

/**
 * What one request touched, filled in while it runs: the resources that passed an access
 * check (read, listed, written or denied) and the patients they belong to.
 */
export class AuditScope {
  readonly entities = new Set<string>();
  readonly patients = new Set<string>();
  /** The first resource touched: the event's resource when it touches one. */
  primary: { type: string; id: string; version: string | null } | undefined;
  breakGlass = false;
  actor: AuditActor | undefined;
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

  /** A resource the request touched, with the patients whose compartment holds it. */
  touch(
    resource: { resourceType: string; id?: unknown; meta?: unknown },
    patients: string[],
  ): void {
    const scope = this.current;
    if (!scope || typeof resource.id !== 'string') {
      return;
    }
    const version = (resource.meta as { versionId?: unknown } | undefined)?.versionId;
    const versionId = typeof version === 'string' ? version : null;
    scope.primary ??= { type: resource.resourceType, id: resource.id, version: versionId };
    scope.entities.add(`${resource.resourceType}/${resource.id}`);
    for (const patient of patients) {
      scope.patients.add(patient);
    }
  }

  touchPatient(patientId: string): void {
    this.current?.patients.add(patientId);
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
