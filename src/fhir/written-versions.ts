import { Injectable } from '@nestjs/common';
import { AppError } from '../common/errors/app-error.js';
import { AppConfig } from '../config/config.js';
import { isDotSegment, isValidId, type FhirResource } from './fhir-types.js';
import { ReferenceIntegrity, type Writer } from './reference-integrity.js';
import { ResourceValidator } from './resource-validator.js';
import { withServerFields } from './resource-versions.js';
import type { NextVersion, RenderedVersion } from './resource.repository.js';
import { IndexExtractor } from './search/index-extractor.js';
import type { IndexRows } from './search/index-rows.js';
import { SearchDefinitions } from './search/search-definitions.js';
import {
  bundleReference,
  conditionalReference,
  unstorableBundle,
  type WriteRefusal,
} from './write-refusals.js';

/**
 * What a write (create, update, patch) stores: the body it sends, checked as a FHIR resource of
 * its type, and the version rendered from it with its search index rows.
 */
@Injectable()
export class WrittenVersions {
  /** The most search index rows one version may have (FHIR_INDEX_ROWS_MAX). */
  private readonly indexRowsMax: number;

  constructor(
    config: AppConfig,
    private readonly validator: ResourceValidator,
    private readonly indexer: IndexExtractor,
    private readonly integrity: ReferenceIntegrity,
    private readonly searchDefinitions: SearchDefinitions,
  ) {
    this.indexRowsMax = config.indexRowsMax;
  }

  /**
   * The version to store: JSON with the server's id and meta, and its search index rows, whose
   * references are checked when the transaction commits (by the rights of `writer`, when
   * given: see ReferenceIntegrity.written).
   */
  render(resource: FhirResource, id: string, next: NextVersion, writer?: Writer): RenderedVersion {
    const stored = withServerFields(resource, id, next);
    refuse(bundleReference(stored));
    const index = this.indexer.extract(stored, this.indexRowsMax);
    this.assertReferenceTargets(resource.resourceType, index);
    this.integrity.written(resource.resourceType, id, index, stored, writer);
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

  /** A write's body checked as a resource of the type (a JSON object, its id, validation). */
  async checkBody(type: string, body: unknown): Promise<FhirResource> {
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
    if (isDotSegment(resource.id ?? '')) {
      throw AppError.invalid(
        `${type}.id "${resource.id}" is a step of a URL path (${type}/.. is the base URL), which no request or reference can name: choose another id`,
        [`${type}.id`],
      );
    }
    refuse(unstorableBundle(resource));
    await this.validator.validate(resource);
    refuse(conditionalReference(resource));
    return resource;
  }
}

function refuse(refusal: WriteRefusal | undefined): void {
  if (refusal) throw new AppError(refusal.status, [refusal.issue]);
}
