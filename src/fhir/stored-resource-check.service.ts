import { Injectable } from '@nestjs/common';
import { MoreThan } from 'typeorm';
import { AppError } from '../common/errors/app-error.js';
import { UnitOfWork } from '../database/unit-of-work.js';
import { FhirDefinitions } from './fhir-definitions.js';
import type { FhirResource } from './fhir-types.js';
import { ResourceEntity } from './resource.entity.js';

const BATCH = 200;

/** A stored resource that the current rules refuse: where, never what (the values are PHI). */
export interface RefusedResource {
  type: string;
  id: string;
  /** The FHIRPath expressions of the elements refused; empty where the rule names none. */
  paths: string[];
}

/**
 * Checks every current stored resource against the rules a write is checked by now: one stored
 * before a rule existed (an empty object, an HTML entity in the narrative, the SUBSETTED tag)
 * reads as before, but every update of it (a PUT of what was read, a Bundle entry, an HL7
 * message) is refused until a PATCH repairs it. This finds them before the feed does.
 */
@Injectable()
export class StoredResourceCheck {
  constructor(
    private readonly unitOfWork: UnitOfWork,
    private readonly definitions: FhirDefinitions,
  ) {}

  /** Calls `onRefused` for each refused resource; answers how many resources were checked. */
  async checkAll(onRefused: (refused: RefusedResource) => void): Promise<number> {
    let checked = 0;
    let after = { resourceType: '', id: '' };
    for (;;) {
      const rows = await this.unitOfWork.run((manager) =>
        manager.find(ResourceEntity, {
          where: [
            { resourceType: MoreThan(after.resourceType), deleted: false },
            { resourceType: after.resourceType, id: MoreThan(after.id), deleted: false },
          ],
          order: { resourceType: 'ASC', id: 'ASC' },
          take: BATCH,
        }),
      );
      if (rows.length === 0) return checked;
      for (const row of rows) {
        const paths = this.refusedPaths(JSON.parse(row.content as string) as FhirResource);
        if (paths) onRefused({ type: row.resourceType, id: row.id, paths });
      }
      checked += rows.length;
      const last = rows[rows.length - 1]!;
      after = { resourceType: last.resourceType, id: last.id };
    }
  }

  /** The refused elements' paths, or undefined when the resource passes. */
  private refusedPaths(resource: FhirResource): string[] | undefined {
    try {
      this.definitions.validate(resource);
      return undefined;
    } catch (error) {
      if (!(error instanceof AppError)) throw error;
      return error.issues.flatMap((issue) => issue.expression ?? []);
    }
  }
}
