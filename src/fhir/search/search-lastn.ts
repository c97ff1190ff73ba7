import { Injectable } from '@nestjs/common';
import { ResourceAccess } from '../../access/resource-access.js';
import type { AuthenticatedUser } from '../../auth/authenticated-user.js';
import { AppError } from '../../common/errors/app-error.js';
import { PageCursors } from '../cursor.js';
import { FhirDefinitions } from '../fhir-definitions.js';
import { assertIncludeSource, assertRevInclude } from './rev-includes.js';
import { contentOf, pageLinks, searchBundle, type SearchBundle } from './search-bundle.js';
import { SearchConditions } from './search-conditions.js';
import { MAX_INCLUDED, SearchIncludes } from './search-includes.js';
import { MAX_LAST, parseSearchRequest } from './search-request.js';
import { SearchRepository } from './search.repository.js';
import { SearchWhere } from './search-where.js';
import { SqlParams } from './sql-params.js';

type Query = Record<string, string | string[] | undefined>;

/** `Observation/$lastn`: one page of the latest Observations by code and subject. */
@Injectable()
export class LastNSearch {
  constructor(
    private readonly definitions: FhirDefinitions,
    private readonly conditions: SearchConditions,
    private readonly repository: SearchRepository,
    private readonly access: ResourceAccess,
    private readonly includes: SearchIncludes,
    private readonly wheres: SearchWhere,
    private readonly cursors: PageCursors,
  ) {}

  /**
   * `Observation/$lastn` (R4 Observation-lastn): the most recent `max` (default 1) of each code
   * for each subject among the Observations the criteria match: a patient's latest vital signs
   * in one request. It needs `patient` or `subject`, as a lab's whole history is not "last".
   * It takes what an Observation search takes, but for what would order or page its answer,
   * which is every code's last at once: _include and _revinclude (ignored until now, so the
   * Patient or Provenance asked for was silently missing), _elements, _summary. `viaPost`:
   * the criteria came in a body, which keeps them out of URLs; the Bundle's self link then
   * leaves them out too (it carried them until 2026-12-06).
   */
  async lastN(
    user: AuthenticatedUser,
    received: Query,
    baseUrl: string,
    viaPost = false,
  ): Promise<SearchBundle> {
    const { max: rawMax, ...query } = received;
    const max = rawMax === undefined ? 1 : Number(rawMax);
    if (typeof rawMax === 'object' || !Number.isInteger(max) || max < 1 || max > MAX_LAST) {
      throw AppError.invalid(`max must be a whole number from 1 to ${MAX_LAST}`);
    }
    const request = parseSearchRequest(query);
    if (!request.criteria.some((c) => c.code === 'patient' || c.code === 'subject')) {
      throw AppError.invalid('$lastn needs patient (or subject): the last of whose observations');
    }
    const paged = ['_sort', '_count', '_cursor', '_state'].filter((name) => name in query);
    if (paged.length > 0) {
      throw AppError.of(
        400,
        'not-supported',
        `$lastn answers in one page, newest first within each code: it takes search criteria, max, _include, _revinclude, _elements and _summary, not ${paged.join(', ')}`,
      );
    }
    for (const spec of request.include) assertIncludeSource('Observation', spec);
    for (const spec of request.revinclude) {
      assertRevInclude(
        'Observation',
        spec,
        (t) => this.definitions.isResourceType(t),
        this.conditions,
      );
    }
    const params = new SqlParams();
    const where = this.wheres.where(user, 'Observation', request, params);
    // One page, so no more than a page may hold: cut at 1,000 it was a 200 with a total of
    // 1,000, silently missing the rest of the patient's (or the code's) latest results.
    const ids = await this.repository.lastN(where, params.values, max, MAX_INCLUDED + 1);
    if (ids.length > MAX_INCLUDED) {
      throw AppError.of(
        400,
        'too-costly',
        `Observation/$lastn answers in one page of at most ${MAX_INCLUDED} observations, and more ` +
          'match: narrow it by patient, category or code, or lower max',
      );
    }
    const rows = (await this.repository.load('Observation', ids)).map((row) => contentOf(row));
    const links = pageLinks(
      baseUrl,
      'Observation/$lastn',
      viaPost ? {} : received,
      undefined,
      undefined,
      this.cursors.for(user, 'search'),
    );
    if (request.summaryCount) {
      // Counted, not listed: the row names their patients, not the resources.
      const count = rows.filter((resource) => this.access.isListable(user, resource, false));
      this.access.recordCounted(new Set(count.flatMap((r) => this.access.patientsCounted(r))));
      return searchBundle([], [], count.length, links, params.warnings, new Date());
    }
    const matches = rows.filter((resource) => this.access.isListable(user, resource));
    const included = await this.includes.include(
      user,
      'Observation',
      request,
      matches,
      params.warnings,
    );
    return searchBundle(
      request.subset
        ? matches.map((resource) => this.definitions.subsets.apply(resource, request.subset!))
        : matches,
      included,
      matches.length,
      links,
      params.warnings,
      new Date(),
      baseUrl,
    );
  }
}
