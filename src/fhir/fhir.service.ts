import { randomUUID } from 'node:crypto';
import { Injectable } from '@nestjs/common';
import { isRestrictedIn, ResourceAccess } from '../access/resource-access.js';
import type { AuthenticatedUser } from '../auth/authenticated-user.js';
import { mayUseFhir } from '../auth/permissions.js';
import { AppError } from '../common/errors/app-error.js';
import { FhirDefinitions } from './fhir-definitions.js';
import { SecurityContexts } from './security-contexts.js';
import { assertResourceId, type FhirResource, type StoredResource } from './fhir-types.js';
import type { ResourceEntity } from './resource.entity.js';
import { ResourceRepository, type NextVersion } from './resource.repository.js';
import { UnitOfWork } from '../database/unit-of-work.js';
import { ResourceWrites } from './resource-writes.js';
import { ReferenceIntegrity } from './reference-integrity.js';
import { RetiredPatients } from './retired-patients.js';
import { Turns } from './turns.js';
import {
  assertNoneMatches,
  assertVersionMatches,
  parseContent,
  parseIfMatch,
  type IfMatch,
  sameContent,
  shown,
  stored,
} from './resource-versions.js';
import { sendsWriteOnly, withWriteOnlyKept } from './write-only-elements.js';
import { deletedAnswer, notStored, openForWrite, withListeners } from './write-steps.js';
import { WrittenVersions } from './written-versions.js';

/** A create that passed FhirService.checkCreate, ready to be written. */
export interface CheckedCreate {
  type: string;
  resource: FhirResource;
  id: string;
}

/**
 * The FHIR interactions on stored resources (create, read, vread, update, delete): rules,
 * versions and validation, no HTTP. Their conditional forms are ConditionalWrites', PATCH is
 * FhirPatch's.
 */
@Injectable()
export class FhirService {
  constructor(
    private readonly repository: ResourceRepository,
    private readonly definitions: FhirDefinitions,
    private readonly versions: WrittenVersions,
    private readonly access: ResourceAccess,
    private readonly contexts: SecurityContexts,
    private readonly unitOfWork: UnitOfWork,
    private readonly writes: ResourceWrites,
    private readonly integrity: ReferenceIntegrity,
    private readonly retired: RetiredPatients,
  ) {}

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
    const resource = withWriteOnlyKept(await this.versions.checkBody(type, body), undefined);
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
    return withListeners(
      this.writes,
      this.unitOfWork,
      checked.map(({ type }) => type),
      async () => {
        const rows = await this.repository.insertFirst(
          checked.map(({ type, resource, id }) => ({
            resourceType: type,
            id,
            render: (next: NextVersion) => this.versions.render(resource, id, next, { user }),
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

  async read(user: AuthenticatedUser, type: string, id: string): Promise<StoredResource> {
    this.assertType(type);
    assertResourceId(id, type);
    const row = await this.repository.findCurrent(type, id);
    if (!row) {
      throw notStored(this.access, type, id);
    }
    if (row.deleted) {
      throw deletedAnswer(this.access, user, type, 'read');
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
    if (!current) throw notStored(this.access, type, id);
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
    const resource = await this.versions.checkBody(type, body);
    if (resource.id !== id) {
      throw AppError.invalid('Resource id must match the id in the URL', [`${type}.id`]);
    }
    const expected = parseIfMatch(ifMatch);
    return withListeners(this.writes, this.unitOfWork, [type], async () => {
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
        const previous = await openForWrite(this.access, this.contexts, user, current, 'update');
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
          : this.versions.render(kept, id, next, { user, ...(previous ? { previous } : {}) });
      });
      if (!result.row) {
        throw notStored(this.access, type, id);
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

  /** Deletes the current version; deleting a missing resource is 404, a deleted one is a no-op. */
  async delete(user: AuthenticatedUser, type: string, id: string, ifMatch?: string): Promise<void> {
    this.assertType(type);
    assertResourceId(id, type);
    const expected = parseIfMatch(ifMatch);
    await this.repository.writeNext(type, id, 'DELETE', async (current, next) => {
      const resource = await this.deletable(user, type, id, current, expected);
      if (!resource) return { unchanged: true };
      this.integrity.deleted(type, id);
      // In the deletion's transaction, as a write's listeners are (the HL7 outbox's ADT^A29).
      await this.writes.deleted({ user, resource, versionId: next.versionId });
      return { deleted: true };
    });
  }

  /**
   * Announces the deletions a Bundle or a cascade is about to make, in its transaction and
   * before any of them, so that they are matched against Subscriptions together (one query
   * per Subscription, not one per resource and Subscription); each `delete` still decides.
   */
  willDelete(resources: readonly { type: string; id: string }[]): Promise<void> {
    return this.writes.deleting(resources);
  }

  /**
   * Runs `work`, which deletes `resources` each in a transaction of its own (a batch Bundle's
   * entries): Subscriptions match them together first, rather than one at a time.
   */
  willDeleteApart<T>(
    resources: readonly { type: string; id: string }[],
    work: () => Promise<T>,
  ): Promise<T> {
    return this.writes.deletingApart(resources, work);
  }

  /**
   * Refuses what `delete` would refuse (404, 403, 412), writing nothing, and holds the row
   * against new references until commit (ResourceRepository.lockAgainstReferences): for a
   * cascading delete, which deletes what refers to the resource before the resource itself
   * (CascadeDelete). Read with its lock, the row is checked as it will be deleted; read, then
   * locked, it was two statements (until 2026-12-07).
   */
  async lockDeletable(
    user: AuthenticatedUser,
    type: string,
    id: string,
    ifMatch?: string,
  ): Promise<void> {
    this.assertType(type);
    assertResourceId(id, type);
    const expected = parseIfMatch(ifMatch);
    const current = await this.repository.findCurrentAgainstReferences(type, id);
    await this.deletable(user, type, id, current, expected);
  }

  /** The content a delete removes, undefined when deleted already; else why it may not. */
  private async deletable(
    user: AuthenticatedUser,
    type: string,
    id: string,
    current: ResourceEntity | null,
    expected: IfMatch | undefined,
  ): Promise<FhirResource | undefined> {
    if (!current) {
      throw notStored(this.access, type, id);
    }
    // Deleting it again is a no-op, unless the caller may not learn that it was deleted.
    if (current.deleted && !this.access.maySeeDeletion(user, type, 'delete')) {
      throw AppError.notFound(`${type} resource not found`);
    }
    const resource = await openForWrite(this.access, this.contexts, user, current, 'delete');
    assertVersionMatches(current, expected);
    return resource;
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
}
