import { Injectable } from '@nestjs/common';
import { MoreThan } from 'typeorm';
import { UnitOfWork } from '../../database/unit-of-work.js';
import type { FhirResource } from '../fhir-types.js';
import { ResourceHistoryEntity } from '../resource-history.entity.js';
import { ResourceEntity } from '../resource.entity.js';
import { IndexExtractor } from './index-extractor.js';
import type { IndexRows } from './index-rows.js';
import { SearchIndexRepository, type StoredVersionRows } from './search-index.repository.js';
import { SearchIndexStatus } from './search-index-status.js';

const BATCH = 200;

/**
 * Rebuilds the search index of every current resource: after an upgrade that adds index tables or
 * parameters, or a change to PHI index keys; and files every version of each under the patients
 * it names (resource_history_patient), as its write does. Safe to run while the service runs:
 * each batch is one transaction that reads its resources with a share lock, so a write of one of
 * them waits for the batch to commit, and the batch waits for a write in progress: the rows it
 * writes are always those of the version that stays current, and the versions it files are all
 * there are (it deletes rows of those versions only, and inserts with ON CONFLICT DO NOTHING).
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
        const filed: StoredVersionRows[] = [];
        for (const row of batch) {
          const entries = row.deleted ? null : this.rowsOf(row.content);
          await this.index.replace(manager, row.resourceType, row.id, entries);
          const { resourceType, id: resourceId, versionId } = row;
          filed.push({ resourceType, resourceId, versionId, rows: entries });
        }
        // Every version of these filed again under the patients it names: the backfill could
        // only file them under those their record named then, and an old instance's versions
        // are filed nowhere. The current ones' rows are those just written; the others are
        // read and decrypted here (each through the key, by its number).
        const earlier = await manager
          .createQueryBuilder(ResourceHistoryEntity, 'h')
          .where(
            `(h.resource_type, h.id, h.version_id) IN (
               SELECT v.resource_type, v.id, generate_series(1, v.version_id - 1)
                 FROM unnest(CAST(:types AS text[]), CAST(:ids AS text[]),
                             CAST(:versions AS integer[])) AS v(resource_type, id, version_id))`,
            {
              types: batch.map((row) => row.resourceType),
              ids: batch.map((row) => row.id),
              versions: batch.map((row) => row.versionId),
            },
          )
          .getMany();
        for (const { resourceType, id, versionId, deleted, content } of earlier) {
          const rows = deleted ? null : this.rowsOf(content);
          filed.push({ resourceType, resourceId: id, versionId, rows });
        }
        await this.index.refile(manager, filed);
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

  private rowsOf(content: string | null): IndexRows {
    return this.extractor.extract(JSON.parse(content as string) as FhirResource);
  }
}
