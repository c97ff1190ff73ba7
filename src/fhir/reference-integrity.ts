import { Injectable } from '@nestjs/common';
import { ResourceAccess } from '../access/resource-access.js';
import { AuditContext } from '../audit/audit-context.js';
import type { AuthenticatedUser } from '../auth/authenticated-user.js';
import { AppError } from '../common/errors/app-error.js';
import { AppConfig } from '../config/config.js';
import { UnitOfWork } from '../database/unit-of-work.js';
import type { FhirResource } from './fhir-types.js';
import { isOwnResource, literalReference } from './literal-reference.js';
import { ResourceRepository } from './resource.repository.js';
import { parseContent } from './resource-versions.js';
import type { IndexRows } from './search/index-rows.js';
import { SearchIndexRepository } from './search/search-index.repository.js';
import { SecurityContexts } from './security-contexts.js';

/** Who writes a version, and the version it replaces (absent for a create). */
export interface Writer {
  user: AuthenticatedUser;
  previous?: FhirResource;
}

/** What one transaction wrote, as its references must hold when it commits. */
interface Written {
  /**
   * Each resource the transaction wrote and did not delete (`Type/id`), with the local
   * references of its last version.
   */
  references: Map<string, { param: string; target: string }[]>;
  /** The versioned ones among them (`Patient/1/_history/2`), by resource, as `Type/id/_history/vid`. */
  versions: Map<string, { param: string; target: string }[]>;
  deleted: Set<string>;
  /** Resources found live and locked FOR KEY SHARE in this transaction (lockedLive). */
  live: Set<string>;
  /** Who wrote each of `references`, when known: its references are judged by their rights. */
  writers: Map<string, Writer>;
}

/** How many missing targets an error names before it says how many more there are. */
const NAMED = 5;

/**
 * Referential integrity, as a clinical record needs it: a resource written with a relative
 * reference (`Patient/123`) must name a resource that exists, and a resource that others refer
 * to cannot be deleted. The references are those the search index holds (every reference a
 * search parameter reaches, as HAPI FHIR checks them, and a Binary's relative securityContext),
 * and both rules are checked when the transaction commits, so that a transaction Bundle may
 * write its entries in any order. A Binary's context may be deleted all the same (see
 * SearchIndexRepository.referrersOf).
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
    private readonly access: ResourceAccess,
    private readonly contexts: SecurityContexts,
  ) {
    this.enabled = config.referentialIntegrity;
  }

  /**
   * A version about to be written in the current transaction, by `writer`: a caller confined
   * to a patient's compartment may refer only to records it may read (see judged).
   */
  written(
    type: string,
    id: string,
    index: IndexRows,
    resource: FhirResource,
    writer?: Writer,
  ): void {
    if (!this.enabled) return;
    const state = this.current();
    const key = `${type}/${id}`;
    // A Binary's context is among them (SECURITY_CONTEXT_PARAM): it decides who may read the
    // Binary and which patient's it is (every row that touches it names that patient); until
    // 2026-12-06 `Patient/<an MRN>` was stored as typed.
    const references = index.references
      .filter((reference) => reference.local)
      .map((reference) => ({
        param: reference.param,
        target: `${reference.targetType}/${reference.targetId}`,
      }));
    state.references.set(key, references);
    state.versions.set(key, versionedReferences(resource, references));
    state.deleted.delete(key);
    if (writer) state.writers.set(key, writer);
    else state.writers.delete(key);
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
    state.versions.delete(key);
    state.writers.delete(key);
    state.deleted.add(key);
    state.live.delete(key);
  }

  /**
   * A resource this transaction found live and locked FOR KEY SHARE (CriteriaMatches.lockLive):
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
      () => ({
        references: new Map(),
        versions: new Map(),
        deleted: new Set(),
        live: new Set(),
        writers: new Map(),
      }),
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
    const add = (source: string, param: string, target: string): void => {
      const first = referrers.get(target) ?? { source, params: [] };
      if (first.source === source) first.params.push(param);
      referrers.set(target, first);
    };
    const judged = this.judged(state);
    for (const [source, references] of state.references) {
      for (const { param, target } of references) {
        if (state.references.has(target)) continue;
        if (state.live.has(target) && !judged.has(target)) continue;
        add(source, param, target);
      }
    }
    // A versioned reference names one version, which must be stored and not a deletion (R4:
    // `Patient/1/_history/9` when Patient/1 has three versions names nothing). Its resource is
    // checked live above; the version is looked up whoever wrote it, as it may be this
    // transaction's own.
    const versioned = new Set<string>();
    for (const [source, references] of state.versions) {
      for (const { param, target } of references) {
        versioned.add(target);
        add(source, param, target);
      }
    }
    if (referrers.size === 0) return;
    const plain = [...referrers.keys()].filter(
      (target) => !versioned.has(target) && !judged.has(target),
    );
    const live = plain.length > 0 ? await this.resources.lockLive(plain.map(typeAndId)) : new Set();
    const readable = await this.readable(judged);
    const versions = await this.resources.storedVersions([...versioned].flatMap(versionOf));
    // A record the writer may not read is missing, its versions too: the answer is the one a
    // record never stored gets, word for word.
    const unreadable = (target: string): boolean => {
      const resource = target.replace(/\/_history\/.*$/, '');
      return judged.has(resource) && !readable.has(resource);
    };
    const missing = [...referrers].filter(([target]) =>
      unreadable(target)
        ? true
        : versioned.has(target)
          ? !versions.has(target)
          : !judged.has(target) && !live.has(target),
    );
    if (missing.length === 0) return;
    this.audit.forget(missing.map(([target]) => target.replace(/\/_history\/.*$/, '')));
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

  /**
   * The targets to be judged by the rights of their writer (ResourceAccess.mayReferTo), with
   * that writer: references a confined writer makes to records of types it reads only in its
   * compartment, other than to its own patient (its launch context), to what this transaction
   * writes, and to what the version replaced already referred to (a clinician's result on
   * another Encounter stays editable). Empty for any other writer, at no cost.
   */
  private judged(state: Written): Map<string, AuthenticatedUser> {
    const judged = new Map<string, AuthenticatedUser>();
    for (const [source, { user, previous }] of state.writers) {
      let kept: Set<string> | undefined;
      for (const { target } of state.references.get(source) ?? []) {
        if (judged.has(target) || state.references.has(target)) continue;
        const { type } = typeAndId(target);
        if (target === `Patient/${user.patient}`) continue;
        if (!this.access.judgesReferencesTo(user, type)) continue;
        kept ??= previous ? referencesIn(previous) : new Set();
        if (!kept.has(target)) judged.set(target, user);
      }
    }
    return judged;
  }

  /**
   * Of the judged targets, those live that their writer may read, each locked FOR KEY SHARE
   * as lockLive locks it, and read in the same statement.
   */
  private async readable(judged: Map<string, AuthenticatedUser>): Promise<Set<string>> {
    const readable = new Set<string>();
    if (judged.size === 0) return readable;
    const rows = await this.resources.lockLiveContents([...judged.keys()].map(typeAndId));
    const resources = rows.map(parseContent);
    const contexts = await this.contexts.of(resources);
    for (const resource of resources) {
      const key = `${resource.resourceType}/${String(resource.id)}`;
      const user = judged.get(key)!;
      if (await this.access.mayReferTo(user, resource, contexts.get(resource))) {
        readable.add(key);
      }
    }
    return readable;
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

/** A Binary's securityContext naming this server's resource (`Patient/1`), as `Type/id`. */
function securityContextOf(resource: FhirResource): string | undefined {
  if (resource.resourceType !== 'Binary') return undefined;
  const value = (resource['securityContext'] as { reference?: unknown } | undefined)?.reference;
  const literal = typeof value === 'string' ? literalReference(value) : undefined;
  return literal && isOwnResource(literal) ? `${literal.type}/${literal.id}` : undefined;
}

/**
 * The versioned references of a resource to this server's resources (`Patient/1/_history/2`)
 * whose resource is among those checked (`checked`), as `Type/id/_history/vid`.
 */
function versionedReferences(
  resource: FhirResource,
  checked: readonly { param: string; target: string }[],
): { param: string; target: string }[] {
  const params = new Map<string, string[]>();
  for (const { param, target } of checked) {
    params.set(target, [...(params.get(target) ?? []), param]);
  }
  const found = new Map<string, string[]>();
  eachReference(resource, (reference) => {
    const version = VERSION.exec(reference)?.[1];
    const literal = version === undefined ? undefined : literalReference(reference);
    if (literal && isOwnResource(literal)) {
      const target = `${literal.type}/${literal.id}`;
      const of = params.get(target);
      if (of) found.set(`${target}/_history/${version}`, of);
    }
  });
  return [...found].flatMap(([target, of]) => of.map((param) => ({ param, target })));
}

const VERSION = /\/_history\/([^/]+)$/;

/** The resources of this server a resource refers to by a literal reference, as `Type/id`. */
function referencesIn(resource: FhirResource): Set<string> {
  const found = new Set<string>();
  eachReference(resource, (reference) => {
    const literal = literalReference(reference);
    if (literal && isOwnResource(literal)) found.add(`${literal.type}/${literal.id}`);
  });
  return found;
}

/** Calls `each` with every `reference` string in a resource, at any depth. */
function eachReference(resource: FhirResource, each: (reference: string) => void): void {
  const visit = (value: unknown): void => {
    if (Array.isArray(value)) {
      value.forEach(visit);
    } else if (typeof value === 'object' && value !== null) {
      const object = value as Record<string, unknown>;
      const reference = object['reference'];
      if (typeof reference === 'string') each(reference);
      for (const key in object) visit(object[key]);
    }
  };
  visit(resource);
}

/** `Type/id/_history/vid` as the version the store may hold: none for a vid no version has. */
function versionOf(key: string): { type: string; id: string; versionId: number }[] {
  const match = /^([^/]+)\/([^/]+)\/_history\/([1-9][0-9]{0,8})$/.exec(key);
  return match ? [{ type: match[1]!, id: match[2]!, versionId: Number(match[3]) }] : [];
}

function typeAndId(key: string): { type: string; id: string } {
  const slash = key.indexOf('/');
  return { type: key.slice(0, slash), id: key.slice(slash + 1) };
}
