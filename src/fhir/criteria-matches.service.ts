import { Injectable } from '@nestjs/common';
import type { AuthenticatedUser } from '../auth/authenticated-user.js';
import { mayUseFhir } from '../auth/permissions.js';
import { AppError } from '../common/errors/app-error.js';
import { criteriaQuery } from './criteria.js';
import { CriteriaLocks, type Criteria } from './criteria-locks.js';
import { FhirDefinitions } from './fhir-definitions.js';
import { assertMatchesOwnCriteria } from './own-criteria.js';
import { ReferenceIntegrity } from './reference-integrity.js';
import { ResourceRepository } from './resource.repository.js';
import { RetiredPatients } from './retired-patients.js';
import { SearchService } from './search/search.service.js';

/** Searches of a conditional create, when each finds a match deleted before it is locked. */
const MATCH_ATTEMPTS = 3;

/**
 * Finding stored resources by conditional criteria (a conditional write's, a Bundle's
 * conditional reference, an HL7 feed's identifiers), under the criteria's locks or without.
 */
@Injectable()
export class CriteriaMatches {
  constructor(
    private readonly criteriaLocks: CriteriaLocks,
    private readonly searches: SearchService,
    private readonly repository: ResourceRepository,
    private readonly integrity: ReferenceIntegrity,
    private readonly definitions: FhirDefinitions,
    private readonly retiredPatients: RetiredPatients,
  ) {}

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
   * will refer to it, so that a delete committed since is seen now rather than at commit. A
   * Patient is read in the same statement for the check that a write's references name no
   * merged patient (RetiredPatients), which then needs no statement of its own.
   */
  async lockLive(type: string, id: string): Promise<boolean> {
    if (type === 'Patient') return this.retiredPatients.lockLive(id);
    if ((await this.repository.lockLive([{ type, id }])).size === 0) return false;
    this.integrity.lockedLive(type, id);
    return true;
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
    this.definitions.assertRestfulType(type);
    return this.searches.anyIdentified(type, identifiers);
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
}
