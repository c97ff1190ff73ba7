import { Injectable } from '@nestjs/common';
import { UnitOfWork } from '../database/unit-of-work.js';
import { ResourceRepository } from './resource.repository.js';
import { SearchIndexRepository } from './search/search-index.repository.js';

/**
 * What refers to a stored resource, for a use case that moves those records elsewhere (an HL7
 * merge, a visit or a record moved to another patient).
 */
@Injectable()
export class ResourceReferrers {
  constructor(
    private readonly repository: ResourceRepository,
    private readonly searchIndex: SearchIndexRepository,
    private readonly unitOfWork: UnitOfWork,
  ) {}

  /**
   * Holds off every write that would add a reference to the resource until this transaction
   * commits, and waits for those under way (FOR UPDATE against their FOR KEY SHARE): for a use
   * case that moves what refers to it elsewhere (an HL7 merge), so that none is left behind.
   */
  async lockAgainstReferences(type: string, id: string): Promise<void> {
    await this.repository.lockAgainstReferences(type, id);
  }

  /**
   * The live resources that refer to this one by any reference parameter, at most `limit`, in
   * a stable order: what was recorded in a visit that an HL7 feed moves to another patient. Ids
   * only: each is read, with the reader's access checks, by whoever acts on it.
   */
  referrersOf(type: string, id: string, limit: number): Promise<{ type: string; id: string }[]> {
    return this.searchIndex.referringResources(this.unitOfWork.manager, [{ type, id }], limit);
  }
}
