import { Injectable } from '@nestjs/common';
import { ResourceAccess } from '../../access/resource-access.js';
import type { AuthenticatedUser } from '../../auth/authenticated-user.js';
import { mayUseFhir } from '../../auth/permissions.js';
import { AppError } from '../../common/errors/app-error.js';
import type { FhirResource } from '../fhir-types.js';
import type { ResourceEntity } from '../resource.entity.js';
import { ResourceRepository } from '../resource.repository.js';
import { parseContent } from '../resource-versions.js';
import { withoutWriteOnly } from '../write-only-elements.js';
import { contentOf } from './search-bundle.js';
import { SearchConditions } from './search-conditions.js';
import { SearchDefinitions } from './search-definitions.js';
import type { IncludeSpec, SearchRequest } from './search-request.js';
import { SearchRepository } from './search.repository.js';

/** The most resources a page includes, and the most `$lastn` answers in its one page. */
export const MAX_INCLUDED = 1000;

/** The specs, each once (`_revinclude=Observation:subject` given twice is one). */
function distinct(specs: IncludeSpec[]): IncludeSpec[] {
  const byKey = new Map(
    specs.map((spec) => [
      [spec.sourceType, spec.param, spec.targetType ?? '', String(spec.iterate)].join(':'),
      spec,
    ]),
  );
  return [...byKey.values()];
}

/**
 * `_include` and `_revinclude` of a page of matches (one round, and one more for `:iterate`),
 * under the caller's access rules like the matches.
 */
@Injectable()
export class SearchIncludes {
  constructor(
    private readonly repository: SearchRepository,
    private readonly access: ResourceAccess,
    private readonly searchDefinitions: SearchDefinitions,
    private readonly conditions: SearchConditions,
    private readonly resources: ResourceRepository,
  ) {}

  async include(
    user: AuthenticatedUser,
    type: string,
    request: SearchRequest,
    matches: FhirResource[],
    warnings: Set<string>,
  ): Promise<FhirResource[]> {
    const seen = new Set(
      matches.map((resource) => `${resource.resourceType}/${String(resource.id)}`),
    );
    const included: FhirResource[] = [];
    let round = matches;
    let full = false;
    // The first round from the matches; with :iterate, one more round from what it added.
    for (let depth = 0; depth < 2 && round.length > 0; depth++) {
      const added: FhirResource[] = [];
      // No load once the page holds MAX_INCLUDED: each took up to 1,000 resources, decrypted,
      // however many the loads before had added, and a repeated spec is loaded once. (A load
      // of only the room left would miss what it does not repeat of the loads before.)
      const room = () => MAX_INCLUDED - included.length - added.length;
      const specs = (list: IncludeSpec[]): IncludeSpec[] =>
        distinct(list.filter((spec) => depth === 0 || spec.iterate));
      for (const spec of specs(request.include).flatMap((s) => this.expandWildcard(s, round))) {
        const sources = round.filter((resource) => resource.resourceType === spec.sourceType);
        this.assertReferenceParam(spec);
        if (sources.length === 0 || (full ||= room() <= 0)) continue;
        const targets = await this.repository.loadTargets(
          spec.sourceType,
          sources.map((s) => String(s.id)),
          spec.param,
          spec.targetType,
          MAX_INCLUDED,
        );
        full ||= targets.length >= MAX_INCLUDED;
        const versions = versionedReferences(sources);
        for (const resource of this.listable(user, targets, seen, warnings)) {
          const pinned = await this.pinnedVersion(user, resource, versions);
          if (pinned) added.push(pinned);
        }
      }
      // Checked before the search ran (assertRevInclude).
      for (const spec of specs(request.revinclude)) {
        const targets =
          depth === 0 ? round.filter((resource) => resource.resourceType === type) : round;
        for (const targetType of new Set(targets.map((t) => t.resourceType))) {
          if ((full ||= room() <= 0)) break;
          const ids = targets.filter((t) => t.resourceType === targetType).map((t) => String(t.id));
          const sources = await this.repository.loadSources(
            spec.sourceType,
            spec.param,
            targetType,
            ids,
            MAX_INCLUDED,
          );
          full ||= sources.length >= MAX_INCLUDED;
          added.push(...this.listable(user, sources, seen, warnings));
        }
      }
      included.push(...added);
      round = added;
      if (included.length >= MAX_INCLUDED) break;
    }
    // Until 2026-12-07 a page cut at the cap said nothing, as if nothing else referred.
    if (full || included.length > MAX_INCLUDED) {
      warnings.add(
        `A page includes at most ${MAX_INCLUDED} resources, which this one reached: some may be left out; ask for fewer matches a page (_count)`,
      );
    }
    return included.slice(0, MAX_INCLUDED);
  }

  /** Loaded resources not yet in the Bundle that the caller may list, marked as seen. */
  private listable(
    user: AuthenticatedUser,
    rows: ResourceEntity[],
    seen: Set<string>,
    warnings: Set<string>,
  ): FhirResource[] {
    const listable: FhirResource[] = [];
    for (const resource of rows.map(contentOf)) {
      const key = `${resource.resourceType}/${String(resource.id)}`;
      if (seen.has(key)) continue;
      seen.add(key);
      // A reference that may point to several types (`_include=*`, `Observation:performer`)
      // brings only those the caller may read, and the Bundle says what it left out.
      if (!mayUseFhir(user, resource.resourceType, 'read')) {
        warnings.add(
          `Included resources of a type you may not read were left out: ${resource.resourceType}`,
        );
        continue;
      }
      // Included resources follow the same rules as matches: another patient's or a
      // restricted record is left out.
      if (this.access.isListable(user, resource)) listable.push(resource);
    }
    return listable;
  }

  /**
   * The version of an included resource its sources refer to (`Patient/1/_history/2`, as a
   * Provenance names what it signed): until 2026-12-07 the current one was included, content
   * the Provenance never signed. As vread opens a version, the record as it is now (`current`,
   * listable already) and the version must both be listable; a version that does not exist or
   * is a deletion is left out. Sources naming several versions of it get the current one.
   */
  private async pinnedVersion(
    user: AuthenticatedUser,
    current: FhirResource,
    versions: ReadonlyMap<string, number | null>,
  ): Promise<FhirResource | undefined> {
    const versionId = versions.get(`${current.resourceType}/${String(current.id)}`);
    if (versionId === undefined || versionId === null) return current;
    if (String(versionId) === current.meta?.versionId) return current;
    // Past what PostgreSQL's integer holds, a version that cannot exist (vread caps them so).
    if (versionId < 1 || versionId > 2_147_483_647) return undefined;
    const row = await this.resources.findVersion(
      current.resourceType,
      String(current.id),
      versionId,
    );
    if (!row || row.deleted) return undefined;
    const version = withoutWriteOnly(parseContent(row));
    return this.access.isListable(user, version) ? version : undefined;
  }

  /** `_include=*` and `Type:*` as one spec per reference parameter of the types in the round. */
  private expandWildcard(spec: IncludeSpec, round: FhirResource[]): IncludeSpec[] {
    if (spec.param !== '*') return [spec];
    const types =
      spec.sourceType === '*'
        ? [...new Set(round.map((resource) => resource.resourceType))]
        : [spec.sourceType];
    return types.flatMap((type) =>
      this.searchDefinitions
        .paramsOf(type)
        .filter((param) => param.type === 'reference')
        .map((param) => ({ sourceType: type, param: param.code, iterate: spec.iterate })),
    );
  }

  assertReferenceParam(spec: IncludeSpec): void {
    const param = this.conditions.param(spec.sourceType, spec.param);
    if (param.type !== 'reference') {
      throw AppError.invalid(`${spec.sourceType}:${spec.param} is not a reference parameter`);
    }
    // A target type the parameter never points to found nothing, with a 200 that said nothing
    // of the typo (`Observation:subject:Foo`) until 2026-12-06.
    const { targets } = param;
    if (
      spec.targetType &&
      targets.length > 0 &&
      !targets.includes('Resource') &&
      !targets.includes(spec.targetType)
    ) {
      throw AppError.invalid(
        `${spec.sourceType}:${spec.param} refers to ${targets.join(', ')}, not to ${spec.targetType}`,
      );
    }
  }
}

const VERSIONED =
  /(?:^|\/)([A-Z][A-Za-z]+)\/([A-Za-z0-9.-]{1,64})\/_history\/([A-Za-z0-9.-]{1,64})$/;

/**
 * The version-specific references of these resources (`Type/id/_history/vid`, relative or
 * absolute), by `Type/id`: null for a target named at several versions.
 */
function versionedReferences(sources: readonly FhirResource[]): Map<string, number | null> {
  const versions = new Map<string, number | null>();
  const visit = (value: unknown): void => {
    if (Array.isArray(value)) {
      value.forEach(visit);
    } else if (typeof value === 'object' && value !== null) {
      for (const [name, item] of Object.entries(value)) {
        const match = name === 'reference' && typeof item === 'string' && VERSIONED.exec(item);
        if (match) {
          const key = `${match[1]}/${match[2]}`;
          // A version id that is no integer names a version that cannot exist: 0.
          const versionId = /^[1-9]\d{0,9}$/.test(match[3]!) ? Number(match[3]) : 0;
          const known = versions.get(key);
          versions.set(key, known === undefined || known === versionId ? versionId : null);
        } else {
          visit(item);
        }
      }
    }
  };
  sources.forEach(visit);
  return versions;
}
