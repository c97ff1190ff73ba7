import { Injectable } from '@nestjs/common';
import { AppError } from '../common/errors/app-error.js';
import { BlindIndexer } from '../crypto/blind-index.js';
import { criteriaLocks } from './criteria.js';
import { ResourceRepository } from './resource.repository.js';
import { SearchDefinitions } from './search/search-definitions.js';

/** Conditional criteria, as CriteriaMatches.lockCriteria and uniqueMatch take them. */
export interface Criteria {
  type: string;
  criteria: string;
}

/**
 * The most criteria locks one transaction takes. Advisory locks live until commit in the lock
 * table all sessions share (max_locks_per_transaction × max_connections slots, 6,400 at
 * PostgreSQL's defaults): a transaction Bundle of 19,000 conditional references ran it out
 * ("out of shared memory", answered 503 "retry later", failing every time), and other sessions'
 * locks failed with it, until 2026-12-07. Under a third of the defaults' table: a key or two
 * per criteria, so a Bundle of some 1,000 to 2,000 conditional creates or references.
 */
export const MAX_CRITERIA_LOCKS = 2_000;

/**
 * Takes the advisory locks of conditional criteria (see criteriaLocks) for the current
 * transaction. A key holds the values the criteria constrain (an MRN), so it is a keyed blind
 * hash before it reaches PostgreSQL: a statement log or pg_locks shows a number that cannot be
 * tested against guessed MRNs without the blind-index key.
 */
@Injectable()
export class CriteriaLocks {
  constructor(
    private readonly repository: ResourceRepository,
    private readonly definitions: SearchDefinitions,
    private readonly blind: BlindIndexer,
  ) {}

  /**
   * Locks all the criteria's keys in one statement, in one order (by hash) for every
   * transaction, so two writers never each hold a lock the other waits for; a key that one
   * criteria locks shared and another exclusively is taken exclusively, or the two writers
   * that each held it shared would deadlock upgrading it.
   */
  async lock(criteria: readonly Criteria[]): Promise<void> {
    const modes = new Map<string, boolean>();
    for (const { type, criteria: text } of criteria) {
      const lookup = (code: string) => this.definitions.param(type, code);
      for (const { key, shared } of criteriaLocks(type, text, lookup)) {
        modes.set(key, (modes.get(key) ?? true) && shared);
      }
    }
    if (modes.size > MAX_CRITERIA_LOCKS) {
      throw AppError.of(
        400,
        'too-costly',
        `The conditional criteria of one transaction (ifNoneExist, conditional URLs, conditional references) take at most ${MAX_CRITERIA_LOCKS} locks; these take ${modes.size}: send the Bundle in parts`,
      );
    }
    const locks = [...modes].map(([key, shared]) => ({ id: this.hash(key), shared }));
    locks.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    await this.repository.lockCriteria(locks);
  }

  private hash(key: string): bigint {
    return Buffer.from(this.blind.compute('conditional-lock', key), 'base64url').readBigInt64BE(0);
  }
}
