import { Injectable } from '@nestjs/common';
import type { AuthenticatedUser } from '../auth/authenticated-user.js';
import { mayUseFhir } from '../auth/permissions.js';
import { AppError } from '../common/errors/app-error.js';
import { operationOutcome, type OperationOutcome } from '../common/errors/operation-outcome.js';
import { AppConfig } from '../config/config.js';
import { UnitOfWork } from '../database/unit-of-work.js';
import { ConditionalWrites } from './conditional-writes.service.js';
import { FhirService } from './fhir.service.js';
import { SearchIndexRepository } from './search/search-index.repository.js';

/** What a cascading delete removed: its target and, by type, how many resources with it. */
export interface Cascade {
  target: string;
  byType: Map<string, number>;
}

/**
 * `DELETE …?_cascade=delete` (or `X-Cascade: delete`), as HAPI FHIR offers it: deletes the
 * resource and every live resource that refers to it, directly or through others (the
 * Observations of a Patient, the DiagnosticReports of those), in one transaction. Each one
 * passes the same checks as a delete of its own (role, patient compartment, restricted
 * records); one refusal refuses them all.
 */
@Injectable()
export class CascadeDelete {
  /**
   * How many resources one cascading delete may remove besides its target (FHIR_CASCADE_MAX,
   * default 5,000; a Synthea patient's record is up to about 1,100).
   */
  readonly max: number;

  constructor(
    config: AppConfig,
    private readonly fhir: FhirService,
    private readonly conditional: ConditionalWrites,
    private readonly unitOfWork: UnitOfWork,
    private readonly searchIndex: SearchIndexRepository,
  ) {
    this.max = config.cascadeMax;
  }

  delete(user: AuthenticatedUser, type: string, id: string, ifMatch?: string): Promise<Cascade> {
    return this.unitOfWork.run(() => this.deleteWithReferrers(user, { type, id }, ifMatch));
  }

  /** The conditional form; undefined when nothing matches (and nothing was deleted). */
  conditionalDelete(
    user: AuthenticatedUser,
    type: string,
    criteria: string,
    ifMatch?: string,
  ): Promise<Cascade | undefined> {
    return this.unitOfWork.run(async () => {
      const id = await this.conditional.conditionalDeleteTarget(user, type, criteria);
      return id === undefined ? undefined : this.deleteWithReferrers(user, { type, id }, ifMatch);
    });
  }

  /**
   * Deletes what refers to the target, directly or through others, then the target. The target
   * is checked first (its 404, 403 or 412 before any referrer's) and held against new references;
   * then every referrer is found, level by level, and the furthest are deleted first, so that
   * each deletion is matched against Subscriptions while what it refers to is still there
   * (criteria that chain through the target, `Observation?patient.gender=female`, matched none
   * of its referrers' deletions when the target went first, until 2026-12-07).
   */
  private async deleteWithReferrers(
    user: AuthenticatedUser,
    root: { type: string; id: string },
    ifMatch: string | undefined,
  ): Promise<Cascade> {
    await this.fhir.lockDeletable(user, root.type, root.id, ifMatch);
    const target = `${root.type}/${root.id}`;
    const byType = new Map<string, number>();
    const seen = new Set([target]);
    const levels: { type: string; id: string }[][] = [];
    let found = 0;
    let level = [root];
    while (level.length > 0) {
      // Nothing is deleted yet, so what was found before is found again (a report that refers
      // to the patient and to its results): the limit leaves room for it.
      const referrers = (
        await this.searchIndex.referringResources(
          this.unitOfWork.manager,
          level,
          this.max - found + 1 + seen.size,
        )
      ).filter((resource) => !seen.has(`${resource.type}/${resource.id}`));
      if (found + referrers.length > this.max) {
        throw AppError.conflict(
          `${target} has more than ${this.max} resources that refer to it, directly or through ` +
            'others: too many for one cascading delete. Delete some of them first',
        );
      }
      // Finding what refers to the target is a search of those types, and the outcome names
      // them with their counts: a token that may delete them but not search for them (until
      // 2026-12-07) learnt what a patient had on file by deleting it.
      for (const type of new Set(referrers.map((resource) => resource.type))) {
        const searches = mayUseFhir(user, type, 'search');
        if (!searches || !mayUseFhir(user, type, 'delete')) {
          throw AppError.forbidden(
            `Deleting ${target} with _cascade=delete would also delete ${type} resources that ` +
              `refer to it, which you may not ${searches ? 'delete' : 'search for and delete'}`,
          );
        }
      }
      for (const resource of referrers) {
        seen.add(`${resource.type}/${resource.id}`);
        byType.set(resource.type, (byType.get(resource.type) ?? 0) + 1);
      }
      found += referrers.length;
      levels.push(referrers);
      level = referrers;
    }
    await this.fhir.willDelete([...levels.flat(), root]);
    for (const referrers of levels.reverse()) {
      for (const resource of referrers) await this.deleteReferrer(user, target, resource);
    }
    await this.fhir.delete(user, root.type, root.id, ifMatch);
    return { target, byType };
  }

  /**
   * A referrer's own refusal names it, or the client would read "This record is restricted" as
   * being about the resource it asked to delete.
   */
  private async deleteReferrer(
    user: AuthenticatedUser,
    target: string,
    resource: { type: string; id: string },
  ): Promise<void> {
    try {
      await this.fhir.delete(user, resource.type, resource.id);
    } catch (error) {
      if (!(error instanceof AppError)) throw error;
      const what = `Deleting ${target} with _cascade=delete would also delete`;
      // A 404 here is the compartment check: the referrer is another patient's record.
      if (error.status === 404) {
        throw AppError.forbidden(
          `${what} ${resource.type} resources outside your patient's compartment`,
        );
      }
      throw new AppError(
        error.status,
        error.issues.map((issue) => ({
          ...issue,
          diagnostics: `${what} ${resource.type}/${resource.id}, which is refused: ${issue.diagnostics}`,
        })),
      );
    }
  }
}

/** What a cascading delete says it did: no content, only types, counts and the target's id. */
export function cascadeOutcome(cascade: Cascade): OperationOutcome {
  const total = [...cascade.byType.values()].reduce((sum, count) => sum + count, 0);
  const which = [...cascade.byType]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([type, count]) => `${count} ${type}`)
    .join(', ');
  const diagnostics =
    total === 0
      ? `${cascade.target} deleted; no resource referred to it`
      : `${cascade.target} deleted, with ${total} resource${total === 1 ? '' : 's'} that ` +
        `referred to it, directly or through others: ${which}`;
  return operationOutcome([{ severity: 'information', code: 'informational', diagnostics }]);
}

/**
 * Whether a delete asks to cascade: `_cascade=delete` in its query or an `X-Cascade: delete`
 * header (HAPI FHIR's two spellings). Any other value is refused, not ignored: a client that
 * misspells it must not get a plain delete it did not mean, or a 409 it cannot explain.
 */
export function cascadeRequested(values: readonly string[], header: string | undefined): boolean {
  for (const value of header === undefined ? values : [...values, header]) {
    if (value.trim().toLowerCase() !== 'delete') {
      throw AppError.invalid('_cascade (or X-Cascade) takes one value: delete');
    }
  }
  return values.length > 0 || header !== undefined;
}

/**
 * Takes `_cascade` out of a conditional delete's raw query, leaving the criteria as they came
 * (re-encoding them would change the key their lock is taken on).
 */
export function splitCascade(query: string): { criteria: string; cascade: string[] } {
  const cascade: string[] = [];
  const kept = query.split('&').filter((part) => {
    // URLSearchParams decodes one pair as a form does, and never throws on a bad escape.
    const [pair] = new URLSearchParams(part);
    if (pair?.[0] !== '_cascade') return true;
    cascade.push(pair[1]);
    return false;
  });
  return { criteria: kept.join('&'), cascade };
}
