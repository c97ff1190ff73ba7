import { Injectable } from '@nestjs/common';
import { MoreThan } from 'typeorm';
import { UnitOfWork } from '../../database/unit-of-work.js';
import type { FhirResource } from '../fhir-types.js';
import { ResourceEntity } from '../resource.entity.js';
import { IndexExtractor } from './index-extractor.js';
import { SearchIndexRepository } from './search-index.repository.js';
import { SearchIndexStatus } from './search-index-status.js';

const BATCH = 200;

/**
 * Rebuilds the search index of every current resource: after an upgrade that adds index tables or
 * parameters, or a change to PHI index keys. Safe to run while the service runs: each batch is
 * one transaction that reads its resources with a share lock, so a write of one of them waits
 * for the batch to commit, and the batch waits for a write in progress: the rows it writes are
 * always those of the version that stays current.
 */
@Injectable()
export class ReindexService {
  constructor(
    private readonly unitOfWork: UnitOfWork,
    private readonly extractor: IndexExtractor,
    private readonly index: SearchIndexRepository,
    private readonly status: SearchIndexStatus,
  ) {}

  /** How many resources there are to index, for a progress bar (writes alongside change it). */
  countAll(): Promise<number> {
    return this.unitOfWork.run((manager) => manager.count(ResourceEntity));
  }

  async reindexAll(onProgress: (done: number) => void): Promise<number> {
    let done = 0;
    let after = { resourceType: '', id: '' };
    for (;;) {
      const rows = await this.unitOfWork.run(async (manager) => {
        const batch = await manager.find(ResourceEntity, {
          where: [
            { resourceType: MoreThan(after.resourceType) },
            { resourceType: after.resourceType, id: MoreThan(after.id) },
          ],
          order: { resourceType: 'ASC', id: 'ASC' },
          take: BATCH,
          lock: { mode: 'pessimistic_read' },
        });
        for (const row of batch) {
          const entries = row.deleted
            ? null
            : this.extractor.extract(JSON.parse(row.content as string) as FhirResource);
          await this.index.replace(manager, row.resourceType, row.id, entries);
        }
        return batch;
      });
      if (rows.length === 0) {
        // Every resource is now indexed as this version indexes, and so is every later write.
        await this.status.rebuilt();
        return done;
      }
      done += rows.length;
      onProgress(done);
      const last = rows[rows.length - 1]!;
      after = { resourceType: last.resourceType, id: last.id };
    }
  }
}
