import { Injectable } from '@nestjs/common';
import type { AuthenticatedUser } from '../auth/authenticated-user.js';
import { AppError } from '../common/errors/app-error.js';
import { UnitOfWork } from '../database/unit-of-work.js';
import { CriteriaMatches } from './criteria-matches.service.js';
import { FhirDefinitions } from './fhir-definitions.js';
import { FhirPatch } from './fhir-patch.service.js';
import type { StoredResource } from './fhir-types.js';
import { FhirService } from './fhir.service.js';
import { WrittenVersions } from './written-versions.js';

/**
 * The conditional interactions (create with If-None-Exist, PUT, PATCH and DELETE on
 * Type?criteria): the one match found under the criteria's lock, then FhirService's or
 * FhirPatch's interaction on it, in one transaction.
 */
@Injectable()
export class ConditionalWrites {
  constructor(
    private readonly fhir: FhirService,
    private readonly patches: FhirPatch,
    private readonly matches: CriteriaMatches,
    private readonly versions: WrittenVersions,
    private readonly unitOfWork: UnitOfWork,
    private readonly definitions: FhirDefinitions,
  ) {}

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
    this.definitions.assertRestfulType(type);
    if (criteria.trim() === '') {
      // Until 2026-12-07 a plain create: the client's guard against a duplicate, silently gone.
      throw AppError.invalid(
        'If-None-Exist names no criteria: give the search that finds the resource if it exists (identifier=system|value)',
      );
    }
    return this.unitOfWork.run(async () => {
      const match = await this.matches.liveMatch(user, type, criteria);
      if (match) {
        return { stored: await this.fhir.read(user, type, match), created: false };
      }
      const stored = await this.fhir.create(user, type, body, options);
      await this.matches.assertMatchesCriteria(user, type, stored.id, criteria);
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
    this.definitions.assertRestfulType(type);
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
      await this.matches.assertMatchesCriteria(user, type, written.stored.id, criteria);
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
    const match = await this.matches.uniqueMatch(user, type, criteria);
    const resource = await this.versions.checkBody(type, body);
    if (match) {
      if (resource.id !== undefined && resource.id !== match) {
        throw AppError.invalid('The id in the body is not the id of the resource that matches', [
          `${type}.id`,
        ]);
      }
      return this.fhir.update(user, type, match, { ...resource, id: match }, ifMatch, {
        matched: true,
        ifNoneMatch,
      });
    }
    if (resource.id !== undefined) {
      return this.fhir.update(user, type, resource.id, resource, ifMatch, {
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
      stored: await this.fhir.create(user, type, resource, { method: 'PUT' }),
      created: true,
    };
  }

  /** PATCH Type?criteria: patches the one match; 404 when none matches, 412 for several. */
  async conditionalPatch(
    user: AuthenticatedUser,
    type: string,
    criteria: string,
    body: unknown,
    ifMatch?: string,
  ): Promise<StoredResource> {
    this.definitions.assertRestfulType(type);
    return this.unitOfWork.run(async () => {
      const match = await this.matches.uniqueMatch(user, type, criteria);
      if (!match) {
        throw AppError.notFound(`No ${type} matches the conditional criteria`);
      }
      return this.patches.patch(user, type, match, body, ifMatch);
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
    return this.unitOfWork.run(async () => {
      const match = await this.conditionalDeleteTarget(user, type, criteria);
      if (match) {
        await this.fhir.delete(user, type, match, ifMatch);
      }
      return match;
    });
  }

  /** The resource a conditional delete would delete, under the criteria's lock, if one. */
  async conditionalDeleteTarget(
    user: AuthenticatedUser,
    type: string,
    criteria: string,
  ): Promise<string | undefined> {
    this.definitions.assertRestfulType(type);
    return this.matches.uniqueMatch(user, type, criteria);
  }
}
