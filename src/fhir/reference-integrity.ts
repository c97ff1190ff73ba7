import { Injectable } from '@nestjs/common';
import { AuditContext } from '../audit/audit-context.js';
import { AppError } from '../common/errors/app-error.js';
import { AppConfig } from '../config/config.js';
import { UnitOfWork } from '../database/unit-of-work.js';
import type { FhirResource } from './fhir-types.js';
import { literalReference } from './literal-reference.js';
import { ResourceRepository } from './resource.repository.js';
import type { IndexRows } from './search/index-rows.js';
import { SearchIndexRepository } from './search/search-index.repository.js';

/** What one transaction wrote, as its references must hold when it commits. */
interface Written {
  /**
   * Each resource the transaction wrote and did not delete (`Type/id`), with the local
   * references of its last version.
   */
  references: Map<string, { param: string; target: string }[]>;
  deleted: Set<string>;
  /** Resources found live and locked FOR KEY SHARE in this transaction (lockedLive). */
  live: Set<string>;
}

/** How many missing targets an error names before it says how many more there are. */
const NAMED = 5;

/**
 * Referential integrity, as a clinical record needs it: a resource written with a relative
 * reference (`Patient/123`) must name a resource that exists, and a resource that others refer
 * to cannot be deleted. The references are those the search index holds (every reference a
 * search parameter reaches, as HAPI FHIR checks them, and a Binary's relative securityContext,
 * which no parameter indexes), and both rules are checked when the
 * transaction commits, so that a transaction Bundle may write its entries in any order.
 * `FHIR_REFERENTIAL_INTEGRITY=false` turns both off (loading records whose targets come later).
 */
@Injectable()
export class ReferenceIntegrity {
  private readonly enabled: boolean;

  constructor(
    config: AppConfig,
    private readonly unitOfWork: UnitOfWork,
    private readonly resources: ResourceRepository,
    private readonly searchIndex: SearchIndexRepository,
    private readonly audit: AuditContext,
  ) {
    this.enabled = config.referentialIntegrity;
  }

  /** A version about to be written in the current transaction. */
  written(type: string, id: string, index: IndexRows, resource: FhirResource): void {
    if (!this.enabled) return;
    const state = this.current();
    const key = `${type}/${id}`;
    const context = securityContextOf(resource);
    state.references.set(key, [
      ...index.references
        .filter((reference) => reference.local)
        .map((reference) => ({
          param: reference.param,
          target: `${reference.targetType}/${reference.targetId}`,
        })),
      // A Binary's context decides who may read it and which patient's it is (every row that
      // touches it names that patient): until 2026-12-06 `Patient/<an MRN>` was stored as typed.
      ...(context ? [{ param: 'securityContext', target: context }] : []),
    ]);
    state.deleted.delete(key);
  }

  /**
   * With the checks off, a Binary's securityContext that names nothing ever stored is still
   * no patient's: its id (an MRN typed there) stays out of the write's audit row.
   */
  async forgetUnresolvedContext(resource: FhirResource): Promise<void> {
    if (this.enabled) return;
    const context = securityContextOf(resource);
    if (!context) return;
    if ((await this.resources.latestLive([typeAndId(context)])).length === 0) {
      this.audit.forget([context]);
    }
  }

  /** A resource about to be deleted in the current transaction. */
  deleted(type: string, id: string): void {
    if (!this.enabled) return;
    const state = this.current();
    const key = `${type}/${id}`;
    state.references.delete(key);
    state.deleted.add(key);
    state.live.delete(key);
  }

  /**
   * A resource this transaction found live and locked FOR KEY SHARE (FhirService.lockLive):
   * no other transaction can delete it before this one commits, so a reference to it needs
   * no second look-up at commit. One taken inside a savepoint is not remembered: rolled back,
   * the savepoint releases it.
   */
  lockedLive(type: string, id: string): void {
    // Outside a transaction the lock ended with its statement, and one taken in a savepoint
    // ends with it if it is rolled back: nothing to remember.
    if (!this.enabled || !this.unitOfWork.inTransaction || this.unitOfWork.inSavepoint) return;
    this.current().live.add(`${type}/${id}`);
  }

  private current(): Written {
    return this.unitOfWork.stateOf<Written>(
      this,
      () => ({ references: new Map(), deleted: new Set(), live: new Set() }),
      (state) => this.check(state),
    );
  }

  private async check(state: Written): Promise<void> {
    await this.checkDeletions(state);
    await this.checkTargets(state);
  }

  /** Every local reference names a live resource, which stays so until this commits. */
  private async checkTargets(state: Written): Promise<void> {
    // Which resource refers to each target first, and by what, for the error: its type only,
    // as a created one's id means nothing to the client. What this transaction wrote needs no
    // look-up: it exists, and until this commits no other transaction can delete it (a new
    // resource is not visible to them, and an updated one's row is locked).
    const referrers = new Map<string, { source: string; params: string[] }>();
    for (const [source, references] of state.references) {
      for (const { param, target } of references) {
        if (state.references.has(target) || state.live.has(target)) continue;
        const first = referrers.get(target) ?? { source, params: [] };
        if (first.source === source) first.params.push(param);
        referrers.set(target, first);
      }
    }
    if (referrers.size === 0) return;
    const live = await this.resources.lockLive([...referrers.keys()].map(typeAndId));
    const missing = [...referrers].filter(([target]) => !live.has(target));
    if (missing.length === 0) return;
    this.audit.forget(missing.map(([target]) => target));
    const named = missing
      .slice(0, NAMED)
      .map(
        ([target, { source, params }]) =>
          `${target}, referred to by ${typeAndId(source).type} (${params.join(', ')})`,
      );
    const more = missing.length > NAMED ? `, and ${missing.length - NAMED} more` : '';
    throw AppError.of(
      400,
      'not-found',
      `A reference names a resource that does not exist or was deleted: ${named.join('; ')}${more}. ` +
        'Create it first (in a transaction Bundle, in the same Bundle)',
    );
  }

  /** Nothing live refers to a deleted resource. */
  private async checkDeletions(state: Written): Promise<void> {
    if (state.deleted.size === 0) return;
    const targets = [...state.deleted];
    const referrers = await this.searchIndex.referrersOf(
      this.unitOfWork.manager,
      targets.map(typeAndId),
    );
    if (referrers.length === 0) return;
    const total = referrers.reduce((sum, r) => sum + r.count, 0);
    const which = referrers
      .map((r) => `${r.count} ${r.resourceType} by ${r.params.join(', ')}`)
      .join('; ');
    const [what, them] =
      targets.length === 1 ? [targets[0]!, 'it'] : [`${targets.length} resources`, 'them'];
    throw AppError.conflict(
      `${what} cannot be deleted: ${total} resource${total === 1 ? '' : 's'} refer${total === 1 ? 's' : ''} ` +
        `to ${them} (${which}). Delete or change those first, or in the same transaction Bundle`,
    );
  }
}

/** A Binary's relative securityContext (`Patient/1`), as `Type/id`. */
function securityContextOf(resource: FhirResource): string | undefined {
  if (resource.resourceType !== 'Binary') return undefined;
  const value = (resource['securityContext'] as { reference?: unknown } | undefined)?.reference;
  const literal = typeof value === 'string' ? literalReference(value) : undefined;
  return literal && !literal.absolute ? `${literal.type}/${literal.id}` : undefined;
}

function typeAndId(key: string): { type: string; id: string } {
  const slash = key.indexOf('/');
  return { type: key.slice(0, slash), id: key.slice(slash + 1) };
}
