import { randomUUID } from 'node:crypto';
import { Injectable } from '@nestjs/common';
import { isRestrictedIn, ResourceAccess, type OpenedFor } from '../access/resource-access.js';
import type { AuthenticatedUser } from '../auth/authenticated-user.js';
import { mayUseFhir, type FhirInteraction } from '../auth/permissions.js';
import { AppError } from '../common/errors/app-error.js';
import { AppConfig } from '../config/config.js';
import { conditionalReferences } from './conditional-references.js';
import { assertMatchesOwnCriteria } from './own-criteria.js';
import { criteriaQuery } from './criteria.js';
import { CriteriaLocks, type Criteria } from './criteria-locks.js';
import { FhirDefinitions } from './fhir-definitions.js';
import { ResourceValidator } from './resource-validator.js';
import { SecurityContexts } from './security-contexts.js';
import {
  assertResourceId,
  isValidId,
  type FhirResource,
  type StoredResource,
} from './fhir-types.js';
import type { ResourceEntity } from './resource.entity.js';
import {
  ResourceRepository,
  type NextVersion,
  type RenderedVersion,
} from './resource.repository.js';
import { IndexExtractor } from './search/index-extractor.js';
import { unresolvedBundleReference } from './local-references.js';
import type { IndexRows } from './search/index-rows.js';
import { SearchDefinitions } from './search/search-definitions.js';
import { SearchIndexRepository } from './search/search-index.repository.js';
import { SearchService } from './search/search.service.js';
import { UnitOfWork } from '../database/unit-of-work.js';
import { ResourceWrites } from './resource-writes.js';
import { ReferenceIntegrity } from './reference-integrity.js';
import { RetiredPatients } from './retired-patients.js';
import { applyPatch, checkPatch, type PatchBody } from './patch-body.js';
import { Turns } from './turns.js';
import {
  assertNoneMatches,
  assertVersionMatches,
  type IfMatch,
  parseContent,
  parseIfMatch,
  sameContent,
  shown,
  stored,
  withServerFields,
} from './resource-versions.js';
import { sendsWriteOnly, withoutWriteOnly, withWriteOnlyKept } from './write-only-elements.js';

/** A create that passed FhirService.checkCreate, ready to be written. */
export interface CheckedCreate {
  type: string;
  resource: FhirResource;
  id: string;
}

/** Evaluations of one PATCH, when other writes keep changing the resource under it. */
const PATCH_ATTEMPTS = 3;

/** The version a patch was evaluated on is no longer current when its write takes the lock. */
class PatchedVersionChanged extends Error {}

/** Searches of a conditional create, when each finds a match deleted before it is locked. */
const MATCH_ATTEMPTS = 3;

/** The FHIR interactions on stored resources: rules, versions and validation, no HTTP. */
@Injectable()
export class FhirService {
  /** The most search index rows one version may have (FHIR_INDEX_ROWS_MAX). */
  private readonly indexRowsMax: number;
  /** BODY_LIMIT: also what a JSON Patch may copy in all, as a PUT could send no more. */
  private readonly bodyLimit: number;

  constructor(
    config: AppConfig,
    private readonly repository: ResourceRepository,
    private readonly definitions: FhirDefinitions,
    private readonly validator: ResourceValidator,
    private readonly access: ResourceAccess,
    private readonly indexer: IndexExtractor,
    private readonly searches: SearchService,
    private readonly unitOfWork: UnitOfWork,
    private readonly writes: ResourceWrites,
    private readonly integrity: ReferenceIntegrity,
    private readonly contexts: SecurityContexts,
    private readonly searchIndex: SearchIndexRepository,
    private readonly criteriaLocks: CriteriaLocks,
    private readonly searchDefinitions: SearchDefinitions,
    private readonly retired: RetiredPatients,
  ) {
    this.indexRowsMax = config.indexRowsMax;
    this.bodyLimit = config.bodyLimit;
  }

  /**
   * `id` is for a transaction Bundle, which assigns ids up front to resolve urn:uuid references;
   * `method` PUT for a conditional update that creates, as its history entry states.
   */
  async create(
    user: AuthenticatedUser,
    type: string,
    body: unknown,
    options: { id?: string; method?: 'POST' | 'PUT' } = {},
  ): Promise<StoredResource> {
    const { method, ...checks } = options;
    const [created] = await this.createChecked(
      user,
      [await this.checkCreate(user, type, body, checks)],
      method,
    );
    return created!;
  }

  /**
   * Creates several resources in one transaction and a few statements (a feed's message, a
   * Bundle's creates), each checked as `create` checks one. Ids given must be new ones.
   */
  async createMany(
    user: AuthenticatedUser,
    items: { type: string; body: unknown; id?: string }[],
  ): Promise<StoredResource[]> {
    // A lab's message may hold a thousand results: validated in turns, not holding the loop.
    const checked: CheckedCreate[] = [];
    const turns = new Turns();
    for (const { type, body, id } of items) {
      await turns.next();
      checked.push(await this.checkCreate(user, type, body, { ...(id ? { id } : {}) }));
    }
    return this.createChecked(user, checked);
  }

  /**
   * What `create` checks before it writes (type, body, access), for a caller that checks each
   * of many creates on its own, to say which one failed, and then writes them all at once.
   */
  async checkCreate(
    user: AuthenticatedUser,
    type: string,
    body: unknown,
    options: { id?: string } = {},
  ): Promise<CheckedCreate> {
    this.assertType(type);
    // Here for the creates of an update (a conditional update that matches none), which the
    // route's update right let through: a `user/Patient.us` token created Patients until
    // 2026-12-07.
    this.assertMayCreate(user, type);
    const resource = withWriteOnlyKept(await this.checkBody(type, body), undefined);
    // FHIR: the server assigns the id of a created resource and ignores one sent in the body.
    const id = options.id ?? randomUUID();
    this.access.assertMayWrite(user, { ...resource, id }, undefined);
    await this.retired.assertWritable(user, { ...resource, id }, undefined);
    return { type, resource, id };
  }

  /** Writes creates that passed `checkCreate`, in one statement however many there are. */
  async createChecked(
    user: AuthenticatedUser,
    checked: CheckedCreate[],
    method: 'POST' | 'PUT' = 'POST',
  ): Promise<StoredResource[]> {
    return this.withListeners(
      checked.map(({ type }) => type),
      async () => {
        const rows = await this.repository.insertFirst(
          checked.map(({ type, resource, id }) => ({
            resourceType: type,
            id,
            render: (next: NextVersion) => this.render(resource, id, next),
          })),
          method,
        );
        const results = rows.map(stored);
        for (const result of results) {
          await this.integrity.forgetUnresolvedContext(result.resource);
          await this.writes.written({ user, resource: result.resource, created: true });
        }
        return results.map(shown);
      },
    );
  }

  /**
   * Create unless a resource matches the criteria (If-None-Exist): 200 with the match, 201 when
   * created, 412 when several match. Identical conditional creates racing each other serialize
   * on a transaction-scoped advisory lock on the criteria, so exactly one creates.
   */
  async conditionalCreate(
    user: AuthenticatedUser,
    type: string,
    body: unknown,
    criteria: string,
    options: { id?: string } = {},
  ): Promise<{ stored: StoredResource; created: boolean }> {
    this.assertType(type);
    if (criteria.trim() === '') {
      // Until 2026-12-07 a plain create: the client's guard against a duplicate, silently gone.
      throw AppError.invalid(
        'If-None-Exist names no criteria: give the search that finds the resource if it exists (identifier=system|value)',
      );
    }
    return this.unitOfWork.run(async () => {
      const match = await this.liveMatch(user, type, criteria);
      if (match) {
        return { stored: await this.read(user, type, match), created: false };
      }
      const stored = await this.create(user, type, body, options);
      await this.assertMatchesCriteria(user, type, stored.id, criteria);
      return { stored, created: true };
    });
  }

  /**
   * PUT Type?criteria: update the one match, or create when none matches; 412 for several. A
   * match deleted by a plain DELETE (which takes no criteria lock) committed after the search
   * found it is a 409: written over, the deletion was silently undone.
   */
  async conditionalUpdate(
    user: AuthenticatedUser,
    type: string,
    criteria: string,
    body: unknown,
    ifMatch?: string,
    ifNoneMatch?: string,
  ): Promise<{ stored: StoredResource; created: boolean }> {
    this.assertType(type);
    return this.unitOfWork.run(async () => {
      const written = await this.conditionallyUpdated(
        user,
        type,
        criteria,
        body,
        ifMatch,
        ifNoneMatch,
      );
      // Created or updated, a resource the criteria no longer find makes a copy when sent again.
      await this.assertMatchesCriteria(user, type, written.stored.id, criteria);
      return written;
    });
  }

  /** conditionalUpdate's write, in its transaction, before it is compared with the criteria. */
  private async conditionallyUpdated(
    user: AuthenticatedUser,
    type: string,
    criteria: string,
    body: unknown,
    ifMatch?: string,
    ifNoneMatch?: string,
  ): Promise<{ stored: StoredResource; created: boolean }> {
    const match = await this.uniqueMatch(user, type, criteria);
    const resource = await this.checkBody(type, body);
    if (match) {
      if (resource.id !== undefined && resource.id !== match) {
        throw AppError.invalid('The id in the body is not the id of the resource that matches', [
          `${type}.id`,
        ]);
      }
      return this.update(user, type, match, { ...resource, id: match }, ifMatch, {
        matched: true,
        ifNoneMatch,
      });
    }
    if (resource.id !== undefined) {
      return this.update(user, type, resource.id, resource, ifMatch, {
        unmatched: true,
        ifNoneMatch,
      });
    }
    if (ifMatch !== undefined) {
      // If-Match guards an update of the version the client holds: with nothing matched
      // there is none, and it created a resource until 2026-12-06.
      throw AppError.preconditionFailed('If-Match, and no resource matches the criteria');
    }
    return {
      stored: await this.create(user, type, resource, { method: 'PUT' }),
      created: true,
    };
  }

  /**
   * 400 unless the criteria of a conditional create or update, run again in its transaction,
   * find the resource it wrote (see assertMatchesOwnCriteria); the caller's transaction, or a
   * Bundle's, rolls the write back.
   */
  async assertMatchesCriteria(
    user: AuthenticatedUser,
    type: string,
    id: string,
    criteria: string,
  ): Promise<void> {
    await assertMatchesOwnCriteria(type, id, criteria, (query, limit) =>
      this.searches.matchingIds(user, type, query, limit),
    );
  }

  /** PATCH Type?criteria: patches the one match; 404 when none matches, 412 for several. */
  async conditionalPatch(
    user: AuthenticatedUser,
    type: string,
    criteria: string,
    body: unknown,
    ifMatch?: string,
  ): Promise<StoredResource> {
    this.assertType(type);
    return this.unitOfWork.run(async () => {
      const match = await this.uniqueMatch(user, type, criteria);
      if (!match) {
        throw AppError.notFound(`No ${type} matches the conditional criteria`);
      }
      return this.patch(user, type, match, body, ifMatch);
    });
  }

  /**
   * DELETE Type?criteria: deletes the one match and returns its id; nothing to do when none
   * matches; 412 for several, or when If-Match names another version of the match.
   */
  async conditionalDelete(
    user: AuthenticatedUser,
    type: string,
    criteria: string,
    ifMatch?: string,
  ): Promise<string | undefined> {
    this.assertType(type);
    return this.unitOfWork.run(async () => {
      const match = await this.uniqueMatch(user, type, criteria);
      if (match) {
        await this.delete(user, type, match, ifMatch);
      }
      return match;
    });
  }

  /**
   * Takes the locks of several conditional criteria in one order (by key), as a transaction
   * Bundle does before it resolves any: taken one by one in each Bundle's own order, two
   * Bundles with the same criteria listed differently waited on each other (a deadlock, 503).
   * The locks are re-entrant, so uniqueMatch takes each again at no cost.
   */
  async lockCriteria(criteria: Criteria[]): Promise<void> {
    await this.criteriaLocks.lock(criteria);
  }

  /**
   * The single resource matching conditional criteria, under the criteria's lock; several are a
   * 412 that names what asked (`the conditional reference at Observation.subject`).
   */
  async uniqueMatch(
    user: AuthenticatedUser,
    type: string,
    criteria: string,
    what = 'the conditional criteria',
  ): Promise<string | undefined> {
    await this.criteriaLocks.lock([{ type, criteria }]);
    return this.findUnique(user, type, criteria, what);
  }

  /**
   * Whether the resource exists and is not deleted, locking it against deletion until commit
   * (FOR KEY SHARE, as the check of a reference to it does): for a caller that found it and
   * will refer to it, so that a delete committed since is seen now rather than at commit.
   */
  async lockLive(type: string, id: string): Promise<boolean> {
    if ((await this.repository.lockLive([{ type, id }])).size === 0) return false;
    this.integrity.lockedLive(type, id);
    return true;
  }

  /**
   * Holds off every write that would add a reference to the resource until this transaction
   * commits, and waits for those under way (FOR UPDATE against their FOR KEY SHARE): for a use
   * case that moves what refers to it elsewhere (an HL7 merge), so that none is left behind.
   */
  async lockAgainstReferences(type: string, id: string): Promise<void> {
    await this.repository.lockAgainstReferences(type, id);
  }

  /**
   * The single resource matching a conditional create's criteria (uniqueMatch), locked against
   * deletion until commit. A plain DELETE takes no criteria lock: committed between the search
   * and the lock, it leaves a deletion, which is no match (it answered 410), so the search is
   * run again under the same criteria lock and finds none (the caller creates) or a live one.
   * The caller needs the rights to search and read the type: the match is answered with its
   * content, so a token that may only create (`user/Observation.c`) read by criteria such as
   * `_id=…` any record of the type until 2026-12-07.
   */
  async liveMatch(
    user: AuthenticatedUser,
    type: string,
    criteria: string,
    what?: string,
  ): Promise<string | undefined> {
    if (!mayUseFhir(user, type, 'search') || !mayUseFhir(user, type, 'read')) {
      throw AppError.forbidden(
        `A conditional create searches ${type} and answers with its match: it needs the rights to search and read ${type}`,
      );
    }
    for (let attempt = 1; ; attempt++) {
      const match = await this.uniqueMatch(user, type, criteria, what);
      if (match === undefined) return undefined;
      if (await this.lockLive(type, match)) return match;
      if (attempt === MATCH_ATTEMPTS) {
        throw AppError.conflict(
          `The ${type} resources that matched the criteria were deleted meanwhile, ${MATCH_ATTEMPTS} times; send the request again`,
        );
      }
    }
  }

  /**
   * The single resource matching the criteria, without taking their lock: for a look-up that
   * writes nothing of that type (the visit a lab result belongs to), so that the messages of
   * one visit do not wait on each other. The caller needs the right to search the type: a
   * conditional update, patch or delete answers 0, 1 or several matches apart (201/200/412,
   * 404/200/412, 204/412), so a token that may only update or delete (`user/Patient.ud`)
   * learned whether a name, birth date or MRN was on file until 2026-12-07.
   */
  async findUnique(
    user: AuthenticatedUser,
    type: string,
    criteria: string,
    what = 'the criteria',
  ): Promise<string | undefined> {
    if (!mayUseFhir(user, type, 'search')) {
      throw AppError.forbidden(
        `Conditional criteria search ${type}: they need the right to search ${type}`,
      );
    }
    const ids = await this.searches.matchingIds(user, type, criteriaQuery(type, criteria));
    if (ids.length > 1) {
      throw AppError.preconditionFailed(`More than one ${type} matches ${what}`);
    }
    return ids[0];
  }

  /**
   * Ids of at most `limit` live resources matching the criteria, restricted ones included,
   * without taking a lock: candidates the caller compares itself.
   */
  matchingIds(
    user: AuthenticatedUser,
    type: string,
    criteria: string,
    limit: number,
  ): Promise<string[]> {
    return this.searches.matchingIds(user, type, criteriaQuery(type, criteria), limit);
  }

  /**
   * Whether any live resource of the type carries one of these identifiers, restricted ones
   * included, without taking a lock: for records a lock already held covers (a lab report's
   * results, under the report's), asked where a search by them would cost too much.
   */
  anyIdentified(
    type: string,
    identifiers: readonly { system: string; value: string }[],
  ): Promise<boolean> {
    this.assertType(type);
    return this.searches.anyIdentified(type, identifiers);
  }

  /**
   * The live resources that refer to this one by any reference parameter, at most `limit`, in
   * a stable order: what was recorded in a visit that an HL7 feed moves to another patient. Ids
   * only: each is read, with the reader's access checks, by whoever acts on it.
   */
  referrersOf(type: string, id: string, limit: number): Promise<{ type: string; id: string }[]> {
    return this.searchIndex.referringResources(this.unitOfWork.manager, [{ type, id }], limit);
  }

  /**
   * The 404 of a resource never stored. Its id names nothing, and may be an MRN or a name typed
   * in an id's place: the request's audit row leaves it out (see httpAuditEntry).
   */
  private notStored(type: string, id: string): AppError {
    this.access.notStored(`${type}/${id}`);
    return AppError.notFound(`${type} resource not found`);
  }

  /** A deleted record's answer: 410, or 404 to a caller that may not learn of the deletion. */
  private deleted(user: AuthenticatedUser, type: string, interaction: FhirInteraction): AppError {
    return this.access.maySeeDeletion(user, type, interaction)
      ? AppError.gone(`${type} resource was deleted`)
      : AppError.notFound(`${type} resource not found`);
  }

  async read(user: AuthenticatedUser, type: string, id: string): Promise<StoredResource> {
    this.assertType(type);
    assertResourceId(id, type);
    const row = await this.repository.findCurrent(type, id);
    if (!row) {
      throw this.notStored(type, id);
    }
    if (row.deleted) {
      throw this.deleted(user, type, 'read');
    }
    const result = stored(row);
    await this.access.assertMayOpen(
      user,
      result.resource,
      'read',
      await this.contexts.ofOne(result.resource),
    );
    return shown(result);
  }

  async vread(
    user: AuthenticatedUser,
    type: string,
    id: string,
    versionId: string,
  ): Promise<StoredResource> {
    this.assertType(type);
    assertResourceId(id, type);
    const version = Number(versionId);
    // Versions are PostgreSQL integers: anything else cannot exist (and must not reach SQL).
    if (!/^[1-9]\d{0,9}$/.test(versionId) || version > 2_147_483_647) {
      throw AppError.notFound(`${type} version not found`);
    }
    await this.assertShowsVersions(user, type, id);
    const row = await this.repository.findVersion(type, id, version);
    if (!row) {
      throw AppError.notFound(`${type} version not found`);
    }
    if (row.deleted) {
      throw this.access.maySeeDeletion(user, type, 'read')
        ? AppError.gone(`This version of the ${type} resource is a deletion`)
        : AppError.notFound(`${type} version not found`);
    }
    const result = stored(row);
    const context = await this.contexts.ofOne(result.resource);
    const now = await this.contexts.restrictedNow(type, id);
    if (now && !isRestrictedIn(result.resource, context)) {
      // Written before the record (or a Binary's document) was restricted: it opens as the
      // record does now.
      await this.access.assertMayOpen(user, now.resource, 'vread', now.context);
      this.access.assertInCompartment(user, result.resource, 'read', context);
    } else {
      await this.access.assertMayOpen(user, result.resource, 'vread', context);
    }
    return shown(result);
  }

  /**
   * For a patient-scoped token, 404 unless the record as it is now is live and in its
   * compartment (see ResourceAccess.confinesTo), with the words of a record never stored.
   */
  private async assertShowsVersions(
    user: AuthenticatedUser,
    type: string,
    id: string,
  ): Promise<void> {
    if (!this.access.confinesTo(user, type, 'read')) return;
    const current = await this.repository.findCurrent(type, id);
    if (!current) throw this.notStored(type, id);
    const now = current.deleted ? undefined : parseContent(current);
    const context = now && (await this.contexts.ofOne(now));
    if (!this.access.showsVersionsNow(user, type, now, 'read', context)) {
      throw AppError.notFound(`${type} resource not found`);
    }
  }

  /** 404 unless the last content of a deleted record is in the token's compartment. */
  private async assertDeletedInCompartment(
    user: AuthenticatedUser,
    type: string,
    id: string,
  ): Promise<void> {
    const [latest] = await this.repository.latestLive([{ type, id }]);
    if (!latest) throw AppError.notFound(`${type} resource not found`);
    const resource = parseContent(latest);
    this.access.assertInCompartment(user, resource, 'update', await this.contexts.ofOne(resource));
  }

  /**
   * Update, or create with the client's id when none exists (FHIR update-as-create). `matched`:
   * the id is what conditional criteria found live, so it must still be live.
   */
  async update(
    user: AuthenticatedUser,
    type: string,
    id: string,
    body: unknown,
    ifMatch?: string,
    options: { matched?: boolean; unmatched?: boolean; ifNoneMatch?: string } = {},
  ): Promise<{ stored: StoredResource; created: boolean }> {
    this.assertType(type);
    assertResourceId(id, type);
    const resource = await this.checkBody(type, body);
    if (resource.id !== id) {
      throw AppError.invalid('Resource id must match the id in the URL', [`${type}.id`]);
    }
    const expected = parseIfMatch(ifMatch);
    return this.withListeners([type], async () => {
      const result = await this.repository.writeNext(type, id, 'PUT', async (current, next) => {
        if (options.matched && current?.deleted !== false) {
          // Found live by the criteria, deleted once its row lock was ours. Written over, it
          // would come back under the deleter's feet; created anew, the client would not know
          // it had been deleted. Sent again, the update follows FHIR's rule for no match.
          throw AppError.conflict(
            `The ${type} resource that matched the criteria was deleted meanwhile; send the update again`,
          );
        }
        if (options.unmatched && current) {
          // The criteria matched nothing, and the body names a resource that exists (or did):
          // written over, a record the criteria do not describe would be replaced, or a
          // deleted one brought back (FHIR R5 http.html: 409 for an id that already exists).
          throw AppError.conflict(
            `No ${type} matches the criteria, and the id in the body names another ${type}: leave the id out to create, or update that ${type} by its id`,
          );
        }
        if (!current) {
          // FHIR's update-as-create: without the right to create, it is no update of anything.
          this.assertMayCreate(user, type);
        }
        if (current?.deleted && !this.access.maySeeDeletion(user, type, 'update')) {
          // Another patient's deleted record, written over by a patient-scoped token, took
          // its data into that record's id and history, and the version number it answered
          // (3, not 1) told that the id had been used: until 2026-12-06. Its own are its own.
          await this.assertDeletedInCompartment(user, type, id);
        }
        if (current?.deleted) {
          // A re-creation (answered 201): it brings back what a deletion took away. Checked
          // after the compartment, so that another patient's deleted record stays a 404.
          this.assertMayCreate(user, type);
        }
        const previous = await this.openForWrite(user, current, 'update');
        assertVersionMatches(current, expected);
        assertNoneMatches(current, options.ifNoneMatch);
        const kept = this.access.withMetaKept(
          user,
          withWriteOnlyKept(resource, previous),
          previous,
        );
        this.access.assertMayWrite(user, kept, previous);
        await this.retired.assertWritable(user, kept, previous);
        return previous && !sendsWriteOnly(resource) && sameContent(kept, previous)
          ? { unchanged: true }
          : this.render(kept, id, next);
      });
      if (!result.row) {
        throw this.notStored(type, id);
      }
      const written = stored(result.row);
      if (!result.changed) {
        return { stored: { ...shown(written), unchanged: true }, created: false };
      }
      await this.integrity.forgetUnresolvedContext(written.resource);
      await this.writes.written({ user, resource: written.resource, created: result.created });
      return { stored: shown(written), created: result.created };
    });
  }

  /**
   * The patch is evaluated on the version read, with no row lock held: 100 FHIRPath operations
   * on a Patient of 3,000 extensions take seconds, and under the lock every other write of the
   * resource (a one-operation patch waited 6 s) and a database connection waited for them.
   * The lock is taken only to write, if the version is still the one patched. Else the patch
   * starts again from the read: with If-Match, that read answers 412 (or 410, 404) as it
   * would have; without, a patch applies to whatever is current, so the version written
   * meanwhile is patched, PATCH_ATTEMPTS evaluations at most, then 409.
   * A patch needs the right to read the type as well as to update it: its `test` operation
   * compares a value with a guess, and its answer is the whole patched record, so a token that
   * may only update (`user/Patient.u`) read a birth date by guesses until 2026-12-07.
   */
  async patch(
    user: AuthenticatedUser,
    type: string,
    id: string,
    body: unknown,
    ifMatch?: string,
  ): Promise<StoredResource> {
    this.assertType(type);
    assertResourceId(id, type);
    if (!mayUseFhir(user, type, 'read')) {
      throw AppError.forbidden(
        `A patch is applied to the stored ${type} and answers with it: it needs the right to read ${type}`,
      );
    }
    const patch = checkPatch(body);
    const expected = parseIfMatch(ifMatch);
    for (let attempt = 1; ; attempt++) {
      const change = await this.patched(user, type, id, patch, expected);
      try {
        return await this.withListeners([type], async () => {
          const result = await this.repository.writeNext(type, id, 'PATCH', (current, next) => {
            // Read again, a changed resource answers as it would have: 404, 410, 403, 412.
            if (current?.deleted !== false || current.versionId !== change.versionId) {
              throw new PatchedVersionChanged();
            }
            return change.resource ? this.render(change.resource, id, next) : { unchanged: true };
          });
          const written = stored(result.row!);
          if (!result.changed) return { ...shown(written), unchanged: true };
          await this.integrity.forgetUnresolvedContext(written.resource);
          await this.writes.written({ user, resource: written.resource, created: false });
          return shown(written);
        });
      } catch (error) {
        if (!(error instanceof PatchedVersionChanged)) throw error;
        if (attempt === PATCH_ATTEMPTS) {
          throw AppError.conflict(
            `${type} resource changed ${PATCH_ATTEMPTS} times while the patch was applied; send it again`,
          );
        }
      }
    }
  }

  /**
   * The current version's number and the resource it becomes once patched, validated and
   * checked as a write (undefined when the patch changes nothing stored).
   */
  private async patched(
    user: AuthenticatedUser,
    type: string,
    id: string,
    patch: PatchBody,
    expected: IfMatch | undefined,
  ): Promise<{ versionId: number; resource?: FhirResource }> {
    const current = await this.repository.findCurrent(type, id);
    if (!current) {
      throw this.notStored(type, id);
    }
    if (current.deleted) {
      throw this.deleted(user, type, 'update');
    }
    const previous = (await this.openForWrite(user, current, 'patch'))!;
    assertVersionMatches(current, expected);
    // The patch sees what a read shows: copy, move or test on a write-only value (a
    // Subscription's header credentials) would otherwise reveal it or confirm a guess.
    const patched = await applyPatch(
      withoutWriteOnly(parseContent(current)),
      patch,
      this.bodyLimit,
    );
    if (patched.resourceType !== type || patched.id !== id) {
      throw AppError.invalid('A patch must not change resourceType or id');
    }
    const resource = withWriteOnlyKept(await this.checkBody(type, patched), previous);
    this.access.assertMayWrite(user, resource, previous);
    await this.retired.assertWritable(user, resource, previous);
    const unchanged = !sendsWriteOnly(patched) && sameContent(resource, previous);
    return unchanged
      ? { versionId: current.versionId }
      : { versionId: current.versionId, resource };
  }

  /** Deletes the current version; deleting a missing resource is 404, a deleted one is a no-op. */
  async delete(user: AuthenticatedUser, type: string, id: string, ifMatch?: string): Promise<void> {
    this.assertType(type);
    assertResourceId(id, type);
    const expected = parseIfMatch(ifMatch);
    await this.repository.writeNext(type, id, 'DELETE', async (current, next) => {
      if (!current) {
        throw this.notStored(type, id);
      }
      // Deleting it again is a no-op, unless the caller may not learn that it was deleted.
      if (current.deleted && !this.access.maySeeDeletion(user, type, 'delete')) {
        throw AppError.notFound(`${type} resource not found`);
      }
      const resource = await this.openForWrite(user, current, 'delete');
      assertVersionMatches(current, expected);
      if (!resource) return { unchanged: true };
      this.integrity.deleted(type, id);
      // In the deletion's transaction, as a write's listeners are (the HL7 outbox's ADT^A29).
      await this.writes.deleted({ user, resource, versionId: next.versionId });
      return { deleted: true };
    });
  }

  /** A write in one transaction with what its listeners record, when any listens. */
  private withListeners<T>(types: string[], work: () => Promise<T>): Promise<T> {
    return types.some((type) => this.writes.watches(type)) ? this.unitOfWork.run(work) : work();
  }

  /**
   * The version to store: JSON with the server's id and meta, and its search index rows, whose
   * references are checked when the transaction commits.
   */
  private render(resource: FhirResource, id: string, next: NextVersion): RenderedVersion {
    const stored = withServerFields(resource, id, next);
    const unresolved = unresolvedBundleReference(stored);
    if (unresolved) {
      throw AppError.of(
        400,
        'invalid',
        'A urn:uuid: reference names an entry of the Bundle it is sent in; on its own, a resource refers to others as Type/id',
        [unresolved],
      );
    }
    const index = this.indexer.extract(stored, this.indexRowsMax);
    this.assertReferenceTargets(resource.resourceType, index);
    this.integrity.written(resource.resourceType, id, index, stored);
    return { content: JSON.stringify(stored), index };
  }

  /**
   * Each reference names a type its element may point to, as the search parameter that
   * indexes it lists them (HAPI checks the same): an Observation's subject that is a
   * Medication was stored until 2026-12-06, found by `subject=Medication/…` and brought in by
   * `_include`. Whether FHIR_REFERENTIAL_INTEGRITY is on or not: the type is the sender's
   * mistake whether or not the target exists yet.
   */
  private assertReferenceTargets(type: string, index: IndexRows): void {
    for (const reference of index.references) {
      const targets = this.searchDefinitions.param(type, reference.param)?.targets ?? [];
      if (targets.length === 0 || targets.includes('Resource')) continue;
      if (targets.includes(reference.targetType)) continue;
      throw AppError.of(
        400,
        'invalid',
        `${type}.${reference.param} refers to a ${reference.targetType}, which it cannot: it refers to ${targets.join(', ')}`,
      );
    }
  }

  /**
   * Access to the stored current version before it is changed or listed: outside a
   * patient-scoped token's compartment it does not exist (404), restricted needs break-glass.
   * Returns its content (undefined for a deletion).
   */
  private async openForWrite(
    user: AuthenticatedUser,
    current: ResourceEntity | null,
    interaction: OpenedFor,
  ): Promise<FhirResource | undefined> {
    if (!current || current.deleted) {
      return undefined;
    }
    const content = parseContent(current);
    await this.access.assertMayOpen(user, content, interaction, await this.contexts.ofOne(content));
    return content;
  }

  private assertMayCreate(user: AuthenticatedUser, type: string): void {
    if (!mayUseFhir(user, type, 'create')) {
      throw AppError.forbidden(
        `No live ${type} has this id or matches the criteria, so the update would create one: it needs the right to create ${type}`,
      );
    }
  }

  private assertType(type: string): void {
    this.definitions.assertRestfulType(type);
  }

  private async checkBody(type: string, body: unknown): Promise<FhirResource> {
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      throw AppError.of(
        400,
        'structure',
        'The request body must be a FHIR resource (a JSON object)',
      );
    }
    const resource = body as FhirResource;
    if (resource.resourceType !== type) {
      throw AppError.invalid('resourceType in the body must match the type in the URL', [
        'resourceType',
      ]);
    }
    if (resource.id !== undefined && (typeof resource.id !== 'string' || !isValidId(resource.id))) {
      throw AppError.invalid('Invalid resource id: 1 to 64 letters, digits, "-" or "."', [
        `${type}.id`,
      ]);
    }
    assertStorableBundle(resource);
    await this.validator.validate(resource);
    const conditional = conditionalReferences(resource)[0];
    if (conditional) {
      throw AppError.invalid(
        `${conditional.path} is a conditional reference (Type?criteria): send it in a transaction or batch Bundle, which resolves it`,
        [conditional.path],
      );
    }
    return resource;
  }
}

/**
 * A batch or transaction Bundle is a request to run, not a record to keep: one sent to
 * `/fhir/Bundle` (or as a Bundle entry) was stored with a 201 and none of its entries ran, so
 * the client took them for written (HAPI FHIR refuses it too). Documents, collections and
 * messages are kept as they are.
 */
function assertStorableBundle(resource: FhirResource): void {
  const { type } = resource as { type?: unknown };
  if (resource.resourceType === 'Bundle' && (type === 'batch' || type === 'transaction')) {
    throw AppError.of(
      422,
      'processing',
      `A Bundle of type ${type} is not stored as a resource: POST it to the base URL (/fhir) to run its entries`,
      ['Bundle.type'],
    );
  }
}
