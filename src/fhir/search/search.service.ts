import { Injectable } from '@nestjs/common';
import { PatientCompartment } from '../../access/patient-compartment.js';
import { ResourceAccess } from '../../access/resource-access.js';
import type { AuthenticatedUser } from '../../auth/authenticated-user.js';
import { AppError } from '../../common/errors/app-error.js';
import { queryRecord } from '../../common/http/query-record.js';
import { SecurityContexts } from '../security-contexts.js';
import { BlindIndexer } from '../../crypto/blind-index.js';
import { AppConfig } from '../../config/config.js';
import { isRefusedStatement, sqlStateOf } from '../../database/database-unavailable.js';
import { UnitOfWork } from '../../database/unit-of-work.js';
import { decodeCursor, notACursor, PageCursors } from '../cursor.js';
import { FhirDefinitions } from '../fhir-definitions.js';
import { edgeOf, fillPage } from '../full-page.js';
import { isValidId, type FhirResource } from '../fhir-types.js';
import { ResourceRepository } from '../resource.repository.js';
import { tokenTerms } from './blind-terms.js';
import { blindField } from './index-extractor.js';
import { assertIncludeSource, assertRevInclude } from './rev-includes.js';
import {
  contentOf,
  isSearchCursor,
  pageLinks,
  searchBundle,
  type Cursor,
  type SearchBundle,
} from './search-bundle.js';
import { SearchConditions } from './search-conditions.js';
import { SearchDefinitions } from './search-definitions.js';
import { SearchIncludes } from './search-includes.js';
import { firstOfRepeated, parseSearchRequest, type Criterion } from './search-request.js';
import { keysetCondition, sortColumns } from './search-sort.js';
import { SearchRepository, type PageRow } from './search.repository.js';
import { LastNSearch } from './search-lastn.js';
import { SearchState } from './search-state.js';
import { SearchWhere } from './search-where.js';
import { SqlParams } from './sql-params.js';

type Query = Record<string, string | string[] | undefined>;

/** A row of a search's page as read, with what access follows (a Binary's securityContext). */
interface Read {
  row: PageRow;
  content: FhirResource;
  context: FhirResource | undefined;
}

/** The most patients a count's audit row names (as many as a page can list). */
const COUNTED_MAX = 1000;

/**
 * FHIR search: criteria to SQL over the index tables, keyset paging, _include and _revinclude,
 * with the caller's access rules applied in SQL (patient compartment, restricted records) and
 * again on every returned resource.
 */
@Injectable()
export class SearchService {
  constructor(
    private readonly definitions: FhirDefinitions,
    private readonly searchDefinitions: SearchDefinitions,
    private readonly conditions: SearchConditions,
    private readonly repository: SearchRepository,
    private readonly resources: ResourceRepository,
    private readonly access: ResourceAccess,
    private readonly compartment: PatientCompartment,
    private readonly states: SearchState,
    private readonly includes: SearchIncludes,
    private readonly contexts: SecurityContexts,
    private readonly blind: BlindIndexer,
    private readonly wheres: SearchWhere,
    private readonly lastn: LastNSearch,
    private readonly cursors: PageCursors,
    private readonly unitOfWork: UnitOfWork,
    private readonly config: AppConfig,
  ) {}

  /**
   * A search's statements run under SEARCH_TIMEOUT_MS (shorter than the connections' statement
   * timeout): past it, the 503 too-costly of a statement timeout, and the connection is free.
   */
  search(
    user: AuthenticatedUser,
    type: string,
    received: Query,
    baseUrl: string,
    options: { lenient?: boolean; viaPost?: boolean; compartment?: string } = {},
  ): Promise<SearchBundle> {
    return this.unitOfWork.limited(this.config.searchTimeoutMs, () =>
      this.searchWithin(user, type, received, baseUrl, options),
    );
  }

  private async searchWithin(
    user: AuthenticatedUser,
    type: string,
    received: Query,
    baseUrl: string,
    options: { lenient?: boolean; viaPost?: boolean; compartment?: string },
  ): Promise<SearchBundle> {
    const lenient = options.lenient ?? false;
    // A compartment search's links go back to it: /Patient/123/Observation?…
    const path =
      options.compartment === undefined ? type : `Patient/${options.compartment}/${type}`;
    // Criteria that came in a form body (or a link made from one) travel on in _state, sealed.
    const state =
      typeof received['_state'] === 'string'
        ? this.states.unseal(user, type, received['_state'])
        : undefined;
    const asked: Query = state
      ? { ...state.query, ...(state.cursor ? { _cursor: state.cursor } : {}) }
      : received;
    // Lenient, a single-valued result parameter given twice takes its first value, said so
    // in the Bundle as unknown parameters are; strict, parseSearchRequest refuses it.
    const { query, warnings: repeated } = lenient
      ? firstOfRepeated(asked)
      : { query: asked, warnings: [] };
    const sealed = options.viaPost === true || state !== undefined;
    this.definitions.assertRestfulType(type);
    const request = parseSearchRequest(query);
    for (const spec of request.include) assertIncludeSource(type, spec);
    for (const spec of request.revinclude) {
      assertRevInclude(type, spec, (t) => this.definitions.isResourceType(t), this.conditions);
    }
    const params = new SqlParams();
    repeated.forEach((warning) => params.warnings.add(warning));
    let used = query;
    if (lenient) {
      const known = (criterion: Criterion) =>
        this.isKnown(type, criterion.code, criterion.has?.type);
      const ignored = [...new Set(request.criteria.filter((c) => !known(c)).map((c) => c.code))];
      if (ignored.length > 0) {
        request.criteria = request.criteria.filter(known);
        // The links carry what the search used, and the outcome names what it did not.
        used = Object.fromEntries(
          Object.entries(query).filter(([name, value]) =>
            parseSearchRequest({ [name]: value }).criteria.every(known),
          ),
        );
        params.warnings.add(`Unknown search parameters were ignored: ${ignored.join(', ')}`);
      }
    }
    const where = this.wheres.where(user, type, request, params, {
      ...(options.compartment !== undefined ? { compartment: options.compartment } : {}),
    });
    // The count uses the criteria's parameters only: sort and keyset ones are added after.
    const whereValues = [...params.values];
    const columns = sortColumns(type, request.sort, this.searchDefinitions, params);
    // A search by _lastUpdated may be a client's poll (`_lastUpdated=ge` the last Bundle's
    // lastUpdated): the Bundle's is then the instant up to which every version is committed,
    // taken before the matches are read. Other searches skip its query, which added 0.6 ms to
    // each (p50 1.5 to 2.1 ms, README, Search): search is the hot path.
    const polled = request.criteria.some((criterion) => criterion.code === '_lastUpdated');
    const now = polled ? await this.resources.completeUpTo() : new Date();

    // A count of what the caller may not list tells what it holds: three Binaries of another
    // patient counted 3 for a patient-scoped token until 2026-12-06.
    const countable = this.access.countsInSql(type);
    if (!countable && request.summaryCount) {
      throw AppError.of(
        400,
        'not-supported',
        `${type} resources are not counted here: who may see each one follows its securityContext, which a count cannot check; page through the search instead`,
      );
    }
    if (!countable && request.total === 'accurate') {
      params.warnings.add(
        `The Bundle has no total: who may see each ${type} follows its securityContext, which a count cannot check`,
      );
    }
    const total =
      countable && (request.total === 'accurate' || request.summaryCount)
        ? await this.repository.count(where, whereValues)
        : undefined;
    // A count that lists nothing (`_summary=count`, `_count=0`) names the patients of what it
    // counted; a page names its own, and its total beyond the page is an aggregate.
    const tied = this.compartment.paramsOf(type);
    if (total && request.summaryCount && (type === 'Patient' || tied.length > 0)) {
      this.access.recordCounted(
        await this.repository.countedPatients(where, whereValues, type, tied, COUNTED_MAX),
      );
    }
    const cursors = this.cursors.for(user, 'search');
    const links = (next?: Cursor, previous?: Cursor) =>
      sealed
        ? this.states.links(user, baseUrl, type, path, used, next, previous, cursors)
        : pageLinks(baseUrl, path, used, next, previous, cursors);
    if (request.summaryCount) {
      return searchBundle([], [], total, links(), params.warnings, now);
    }

    const cursor = request.cursor
      ? decodeCursor(request.cursor, isSearchCursor(columns.length), 'search', cursors)
      : undefined;
    // A later page of a poll says its first page's instant, which its cursor carries.
    const first = polled && cursor?.c !== undefined ? new Date(cursor.c) : undefined;
    const complete = first !== undefined && first < now ? first : now;
    const carried = polled ? { c: complete.toISOString() } : {};
    const backwards = cursor?.d === 'p';
    // Each read's keyset values follow the criteria's and the sort's: a later read replaces
    // the earlier one's (PostgreSQL refuses a parameter a statement does not use).
    const base = params.values.length;
    const pageWhere = (keys: string[] | undefined) => {
      params.values.length = base;
      return keys ? `${where} AND ${keysetCondition(columns, keys, backwards, params)}` : where;
    };
    // Rows the SQL could not leave out (a Binary follows its securityContext, another
    // resource) are skipped while reading, so that the page is full (see fillPage).
    const filled = await fillPage(
      request.count,
      async (after: Read | undefined, limit): Promise<Read[]> => {
        const rows = await this.repository
          .page(pageWhere(after?.row.keys ?? cursor?.k), params.values, columns, backwards, limit)
          .catch((error: unknown) => {
            // A cursor's keys are cast to their columns' types (timestamptz, numeric): one a
            // client edited (`x` for an instant) is PostgreSQL's data exception, a 500 until
            // 2026-12-06. The criteria, checked before, never are.
            if (cursor && sqlStateOf(error)?.startsWith('22')) throw notACursor('search');
            throw error;
          });
        const contents = rows.map((row) => contentOf(row.resource));
        const contexts = await this.contexts.of(contents);
        return rows.map((row, i) => ({
          row,
          content: contents[i]!,
          context: contexts.get(contents[i]!),
        }));
      },
      // Recorded as listed once on the page: the one read past it is not shown.
      (reads) =>
        reads.filter((read) => this.access.isListable(user, read.content, false, read.context)),
    );
    const edge = edgeOf(filled, request.count)?.row;
    const shown = filled.kept.slice(0, request.count);
    if (backwards) shown.reverse();
    for (const read of shown) this.access.recordListed(read.content, read.context);
    const page = shown.map((read) => read.row);
    const matches = shown.map((read) => read.content);
    const included = await this.includes.include(user, type, request, matches, params.warnings);

    // Forwards, the next page starts after the edge; backwards, the previous one before it,
    // and the next one after the last row shown, or when none is (reading stopped at the bound
    // past hidden rows), after the last one read: an empty page had no next link until
    // 2026-12-07, and a client paging back lost its way forward.
    const firstRow = page[0];
    const last = page[page.length - 1] ?? edge;
    const next = backwards ? (cursor !== undefined ? last : undefined) : edge;
    const previous = backwards ? edge : cursor !== undefined ? firstRow : undefined;
    return searchBundle(
      request.subset
        ? matches.map((resource) => this.definitions.subsets.apply(resource, request.subset!))
        : matches,
      included,
      total,
      links(
        next ? { d: 'n', k: next.keys, ...carried } : undefined,
        previous ? { d: 'p', k: previous.keys, ...carried } : undefined,
      ),
      params.warnings,
      complete,
      baseUrl,
    );
  }

  /**
   * `Observation/$lastn`, as LastNSearch answers it (batch entries reach it here too), under
   * SEARCH_TIMEOUT_MS as a search is: until 2026-12-07 it had the connections' minute.
   */
  lastN(
    user: AuthenticatedUser,
    received: Query,
    baseUrl: string,
    viaPost = false,
  ): Promise<SearchBundle> {
    return this.unitOfWork.limited(this.config.searchTimeoutMs, () =>
      this.lastn.lastN(user, received, baseUrl, viaPost),
    );
  }

  /**
   * Compartment search, `GET /Patient/123/Observation?…`: the search, narrowed to the resources
   * of that type in the patient's compartment. R4 defines other compartments (Encounter,
   * Practitioner…); only the Patient one is offered, as it is what access is built on.
   */
  compartmentSearch(
    user: AuthenticatedUser,
    compartment: { type: string; id: string },
    type: string,
    received: Query,
    baseUrl: string,
    options: { lenient?: boolean; viaPost?: boolean } = {},
  ): Promise<SearchBundle> {
    if (compartment.type !== 'Patient') {
      throw AppError.invalid(
        'Compartment search is offered for the Patient compartment: /Patient/{id}/{type}',
      );
    }
    if (!isValidId(compartment.id)) {
      throw AppError.invalid('Invalid resource id: 1 to 64 letters, digits, "-" or "."');
    }
    if (type === '*') {
      throw AppError.invalid(
        'Every type of a compartment at once is Patient/{id}/$everything; name one type here',
      );
    }
    return this.search(user, type, received, baseUrl, { ...options, compartment: compartment.id });
  }

  /**
   * Ids of the resources matching conditional criteria (`identifier=…`), at most `limit`: what
   * conditional create, update and delete decide on, and $match's candidates. Unknown
   * parameters are errors here.
   */
  async matchingIds(
    user: AuthenticatedUser,
    type: string,
    criteria: string,
    limit = 2,
    withRestricted = true,
  ): Promise<string[]> {
    const request = parseSearchRequest(queryRecord(criteria));
    if (request.criteria.length === 0) {
      throw AppError.invalid('Conditional operations need search criteria, such as identifier=…');
    }
    const params = new SqlParams();
    // Restricted records count for conditional operations: a conditional create must not
    // duplicate one it cannot see. $match leaves them out, as a search does.
    // An identifier's index rows name the candidates, whose type the resources' is compared
    // with (not with a value, which stale statistics may say no row has: SearchRepository.ids).
    const anchor = this.conditions.candidateCriterion(type, request.criteria);
    const where = this.wheres.where(user, type, request, params, {
      withRestricted,
      ...(anchor ? { typeSql: 'c.resource_type' } : {}),
    });
    const candidates = anchor && this.conditions.candidates(type, anchor, params);
    return this.repository.ids(where, params.values, limit, candidates);
  }

  /**
   * Whether any live resource of the type carries one of these identifiers, restricted ones
   * included (as conditional operations count them): their keyed hashes looked up in the index
   * alone, one probe each. Searched as `identifier=a,b,…`, the criteria join the resources in
   * id order, and with no statistics on the type yet (its first minute of writes) PostgreSQL
   * read every one of them to find none (an HL7 feed's ten results took 230 ms a message).
   */
  async anyIdentified(
    type: string,
    identifiers: readonly { system: string; value: string }[],
  ): Promise<boolean> {
    const field = blindField(type, 'identifier');
    const hashes = identifiers.map(({ system, value }) =>
      this.blind.compute(field, tokenTerms(system, value)[1]!),
    );
    return this.repository.anyBlind(type, 'identifier', hashes);
  }

  /**
   * Which of `ids` (resources of `type`, as the current transaction sees them) match stored
   * criteria (a Subscription's, an export's `_typeFilter`) searched by `user`: their roles,
   * scopes and patient compartment. Restricted records never match, as in any search.
   */
  async matchingAmong(
    user: AuthenticatedUser,
    type: string,
    criteria: string,
    ids: readonly string[],
  ): Promise<Set<string>> {
    const params = new SqlParams();
    const where = this.wheres.criteriaWhere(user, type, criteria, params);
    const found = await this.repository.ids(
      `${where} AND r.id = ANY(${params.add(ids)}::text[])`,
      params.values,
      ids.length,
    );
    return new Set(found);
  }

  /**
   * Refuses criteria to be stored (Subscription, `_typeFilter`) that the user could not search
   * with, or that PostgreSQL would not run: they are run once, for no rows. Accepted, a value it
   * cannot read (a number of 17,000 decimals) would fail at every write of the type instead.
   */
  async assertCriteria(user: AuthenticatedUser, type: string, criteria: string): Promise<void> {
    const params = new SqlParams();
    const where = this.wheres.criteriaWhere(user, type, criteria, params);
    try {
      await this.repository.probe(where, params.values);
    } catch (error) {
      if (!isRefusedStatement(error)) throw error;
      // The database's message would quote the value; the criteria are the writer's own.
      throw AppError.invalid(
        'The criteria cannot be searched: the database refuses one of their values',
      );
    }
  }

  private isKnown(type: string, code: string, hasType?: string): boolean {
    return (code === '_has' && hasType !== undefined) || this.conditions.isSearchable(type, code);
  }
}
