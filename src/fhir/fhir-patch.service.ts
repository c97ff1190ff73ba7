import { Injectable } from '@nestjs/common';
import { ResourceAccess } from '../access/resource-access.js';
import type { AuthenticatedUser } from '../auth/authenticated-user.js';
import { mayUseFhir } from '../auth/permissions.js';
import { AppError } from '../common/errors/app-error.js';
import { AppConfig } from '../config/config.js';
import { UnitOfWork } from '../database/unit-of-work.js';
import { FhirDefinitions } from './fhir-definitions.js';
import { assertResourceId, type FhirResource, type StoredResource } from './fhir-types.js';
import { applyPatch, checkPatch, type PatchBody } from './patch-body.js';
import { ReferenceIntegrity } from './reference-integrity.js';
import { ResourceRepository } from './resource.repository.js';
import { ResourceWrites } from './resource-writes.js';
import {
  assertVersionMatches,
  type IfMatch,
  parseContent,
  parseIfMatch,
  sameContent,
  shown,
  stored,
} from './resource-versions.js';
import { RetiredPatients } from './retired-patients.js';
import { SecurityContexts } from './security-contexts.js';
import { sendsWriteOnly, withoutWriteOnly, withWriteOnlyKept } from './write-only-elements.js';
import { deletedAnswer, notStored, openForWrite, withListeners } from './write-steps.js';
import { WrittenVersions } from './written-versions.js';

/** Evaluations of one PATCH, when other writes keep changing the resource under it. */
const PATCH_ATTEMPTS = 3;

/** The version a patch was evaluated on is no longer current when its write takes the lock. */
class PatchedVersionChanged extends Error {}

/** FHIR's patch interaction (JSON Patch or FHIRPath Patch) on a stored resource. */
@Injectable()
export class FhirPatch {
  /** BODY_LIMIT: also what a JSON Patch may copy in all, as a PUT could send no more. */
  private readonly bodyLimit: number;

  constructor(
    config: AppConfig,
    private readonly repository: ResourceRepository,
    private readonly definitions: FhirDefinitions,
    private readonly versions: WrittenVersions,
    private readonly access: ResourceAccess,
    private readonly contexts: SecurityContexts,
    private readonly retired: RetiredPatients,
    private readonly integrity: ReferenceIntegrity,
    private readonly writes: ResourceWrites,
    private readonly unitOfWork: UnitOfWork,
  ) {
    this.bodyLimit = config.bodyLimit;
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
    this.definitions.assertRestfulType(type);
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
        return await withListeners(this.writes, this.unitOfWork, [type], async () => {
          const result = await this.repository.writeNext(type, id, 'PATCH', (current, next) => {
            // Read again, a changed resource answers as it would have: 404, 410, 403, 412.
            if (current?.deleted !== false || current.versionId !== change.versionId) {
              throw new PatchedVersionChanged();
            }
            return change.resource
              ? this.versions.render(change.resource, id, next, {
                  user,
                  previous: change.previous,
                })
              : { unchanged: true };
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
  ): Promise<{ versionId: number; resource?: FhirResource; previous: FhirResource }> {
    const current = await this.repository.findCurrent(type, id);
    if (!current) {
      throw notStored(this.access, type, id);
    }
    if (current.deleted) {
      throw deletedAnswer(this.access, user, type, 'update');
    }
    const previous = (await openForWrite(this.access, this.contexts, user, current, 'patch'))!;
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
    const resource = withWriteOnlyKept(await this.versions.checkBody(type, patched), previous);
    this.access.assertMayWrite(user, resource, previous);
    await this.retired.assertWritable(user, resource, previous);
    const unchanged = !sendsWriteOnly(patched) && sameContent(resource, previous);
    return unchanged
      ? { versionId: current.versionId, previous }
      : { versionId: current.versionId, resource, previous };
  }
}
