import { Injectable } from '@nestjs/common';
import { isRestrictedIn, ResourceAccess } from '../access/resource-access.js';
import type { AuthenticatedUser } from '../auth/authenticated-user.js';
import { mayUseFhir } from '../auth/permissions.js';
import { AppError } from '../common/errors/app-error.js';
import { AppConfig } from '../config/config.js';
import { sqlStateOf } from '../database/database-unavailable.js';
import { UnitOfWork } from '../database/unit-of-work.js';
import { buildHistoryBundle, cursorLinks, type Bundle } from './bundle.js';
import { notACursor, PageCursors } from './cursor.js';
import { FhirDefinitions } from './fhir-definitions.js';
import { edgeOf, fillPage } from './full-page.js';
import {
  assertResourceId,
  type FhirResource,
  type HistoryCursor,
  type HistoryListParams,
  type HistoryParams,
} from './fhir-types.js';
import type { ResourceHistoryEntity } from './resource-history.entity.js';
import { ResourceRepository } from './resource.repository.js';
import { parseContent, toVersion } from './resource-versions.js';
import { SecurityContexts } from './security-contexts.js';
import { notStored } from './write-steps.js';

/** A version a list shows, with what access followed (a Binary's securityContext). */
interface Listed {
  row: ResourceHistoryEntity;
  content?: FhirResource;
  context?: FhirResource | undefined;
}

/** A version of a list as read, and once found listable, what access followed. */
type ListRead = Partial<Listed> & { row: ResourceHistoryEntity; cursor: HistoryCursor };

/** A version of one resource's history as read, with what access follows. */
interface Read {
  row: ResourceHistoryEntity;
  content: FhirResource | undefined;
  context: FhirResource | undefined;
}

/**
 * The histories (FHIR's history interaction): of one resource, of a type, of the system, each
 * shown as the caller may see them (restricted records, a patient-scoped token's compartment,
 * deletions it may not learn of).
 */
@Injectable()
export class FhirHistory {
  constructor(
    private readonly repository: ResourceRepository,
    private readonly access: ResourceAccess,
    private readonly contexts: SecurityContexts,
    private readonly definitions: FhirDefinitions,
    private readonly cursors: PageCursors,
    private readonly unitOfWork: UnitOfWork,
    private readonly config: AppConfig,
  ) {}

  async history(
    user: AuthenticatedUser,
    type: string,
    id: string,
    params: HistoryParams,
    baseUrl: string,
  ): Promise<Bundle> {
    this.definitions.assertRestfulType(type);
    assertResourceId(id, type);
    const current = await this.repository.findCurrent(type, id);
    if (!current) {
      throw notStored(this.access, type, id);
    }
    // A deleted record's history is as unknown to a patient-scoped token as the record is to
    // its read: its total and its deletion answered 200 until 2026-12-06.
    if (current.deleted && !this.access.maySeeDeletion(user, type, 'history')) {
      throw AppError.notFound(`${type} resource not found`);
    }
    // Access follows the resource as it is now (or was before its deletion), and as it was in
    // every version shown: a restricted one needs break-glass whenever it was restricted.
    // Break-glass is checked (and its use recorded) once per request: for the record when it
    // is restricted now, else for the first restricted version shown.
    let opened: boolean;
    if (!current.deleted) {
      const live = parseContent(current);
      const context = await this.contexts.ofOne(live);
      await this.access.assertMayOpen(user, live, 'history', context);
      opened = isRestrictedIn(live, context);
    } else {
      // A deleted record is as restricted as it was before its deletion.
      const now = await this.contexts.restrictedNow(type, id);
      if (now) await this.access.assertMayOpen(user, now.resource, 'history', now.context);
      opened = now !== undefined;
    }
    const complete = await this.completeUpTo(params.cursor);
    // A version outside a patient-scoped token's compartment (filed to another patient by
    // mistake, or before a merge) is left out, as a list leaves it out: the whole history of
    // the token's own record was a 404 until 2026-12-07. It is skipped while reading, so that
    // the page is full (see fillPage).
    let total: number | undefined;
    const filled = await fillPage(
      params.count,
      async (after: Read | undefined, limit): Promise<Read[]> => {
        const found = await this.repository.historyOf(type, id, {
          since: params.since,
          at: params.at,
          before: after?.row.versionId ?? params.cursor?.versionId,
          limit,
        });
        total ??= found.total;
        const contents = found.rows.map((row) => (row.deleted ? undefined : parseContent(row)));
        const contexts = await this.contexts.of(contents.filter((c) => c !== undefined));
        return found.rows.map((row, i) => {
          const content = contents[i];
          return { row, content, context: content && contexts.get(content) };
        });
      },
      (reads) =>
        reads.filter(
          ({ content, context }) =>
            content === undefined ||
            this.access.isInCompartmentOf(user, content, 'history', context),
        ),
    );
    const shown = filled.kept.slice(0, params.count);
    for (const { content: version, context } of shown) {
      if (version === undefined) continue;
      if (isRestrictedIn(version, context) && !opened) {
        await this.access.assertMayOpen(user, version, 'history', context);
        opened = true;
      } else {
        this.access.assertInCompartment(user, version, 'history', context);
      }
    }
    const rows = shown.map(({ row }) => row);
    // The next page starts after the last version shown, or the last read if reading stopped.
    const last = edgeOf(filled, params.count)?.row;
    const next = last && { type, id, versionId: last.versionId, complete: complete.toISOString() };
    const recreated = await this.repository.recreations(rows);
    return buildHistoryBundle(
      rows.map((row) => toVersion(row, recreated)),
      cursorLinks(
        params,
        `${baseUrl}/${type}/${id}/_history`,
        next,
        this.cursors.for(user, 'history'),
      ),
      baseUrl,
      complete,
      // A total that counts versions a patient-scoped token is not shown tells of them: the
      // total of a token confined to a compartment is left out (its versions are not counted
      // in SQL, where each version's patients are not kept).
      this.access.confinesTo(user, type, 'history') ? undefined : total,
    );
  }

  /**
   * Lists every record of the type, as a search does: it needs the right to search the type
   * besides reading its history (SMART v2 makes type and system history `s`, instance history
   * `r`). A `user/Observation.r` token listed every patient's Observations until 2026-12-07.
   */
  async typeHistory(
    user: AuthenticatedUser,
    type: string,
    params: HistoryListParams,
    baseUrl: string,
  ): Promise<Bundle> {
    this.definitions.assertRestfulType(type);
    if (!mayUseFhir(user, type, 'search')) {
      throw AppError.forbidden(
        `A history of ${type} lists its resources, as a search does: it needs the right to search ${type}`,
      );
    }
    return this.historyList(user, [type], params, `${baseUrl}/${type}/_history`, baseUrl);
  }

  /**
   * `GET /fhir/_history`: every version of the types the caller may read the history of,
   * newest first, as a system syncing changes `_since` an instant asks: those it may search
   * too, as for a type's history.
   */
  async systemHistory(
    user: AuthenticatedUser,
    params: HistoryListParams,
    baseUrl: string,
  ): Promise<Bundle> {
    const types = this.definitions.restfulTypes.filter(
      (type) => mayUseFhir(user, type, 'history') && mayUseFhir(user, type, 'search'),
    );
    if (types.length === 0) {
      throw AppError.forbidden('Access denied');
    }
    return this.historyList(user, types, params, `${baseUrl}/_history`, baseUrl);
  }

  /**
   * A page of the versions of many resources, with keyset links (see historyListParams). It lists
   * as a search does, so it runs under SEARCH_TIMEOUT_MS as a search does: until 2026-12-07 a
   * costly `_history?_since` had the connections' minute, holding the pool as searches did.
   */
  private historyList(
    user: AuthenticatedUser,
    types: string[],
    params: HistoryListParams,
    selfUrl: string,
    baseUrl: string,
  ): Promise<Bundle> {
    return this.unitOfWork.limited(this.config.searchTimeoutMs, () =>
      this.historyPage(user, types, params, selfUrl, baseUrl),
    );
  }

  private async historyPage(
    user: AuthenticatedUser,
    types: string[],
    params: HistoryListParams,
    selfUrl: string,
    baseUrl: string,
  ): Promise<Bundle> {
    const complete = await this.completeUpTo(params.cursor);
    // A patient-scoped token's list leaves other patients' records out in SQL: on a database
    // of many patients nearly every version is another's, and filtered only once read and
    // decrypted, a page read up to MAX_PAGE_READS times (~900 rows) and still came back short
    // (until 2026-12-07). What the SQL cannot judge (a Binary, a version filed to another
    // patient since) is skipped while reading (see listable), so that the page is full (see
    // fillPage).
    const scope = this.access.compartmentScope(user, types, 'history');
    const filled = await fillPage(
      params.count,
      (after: ListRead | undefined, limit): Promise<ListRead[]> =>
        this.repository
          .historyOfTypes(
            types,
            { ...params, count: limit - 1, cursor: after?.cursor ?? params.cursor },
            scope,
          )
          .catch((error: unknown) => {
            // A cursor's instant edited into one PostgreSQL cannot read (30 February, year 0):
            // its data exception, a 500 until 2026-12-06. The other parameters are checked
            // before.
            if (params.cursor && sqlStateOf(error)?.startsWith('22')) throw notACursor('history');
            throw error;
          }),
      async (reads) => {
        const shown = new Map(
          (
            await this.listable(
              user,
              reads.map(({ row }) => row),
            )
          ).map((listed) => [listed.row, listed]),
        );
        return reads.flatMap((read) => {
          const listed = shown.get(read.row);
          return listed ? [{ ...read, ...listed }] : [];
        });
      },
    );
    const page = filled.kept.slice(0, params.count);
    // Recorded as listed once on the page: the one read past it is not shown.
    for (const { content, context } of page) {
      if (content) this.access.recordListed(content, context);
    }
    const listed = page.map(({ row }) => row);
    // The next page starts after the last version shown, or the last read if reading stopped.
    const last = edgeOf(filled, params.count)?.cursor;
    const next = last && { ...last, complete: complete.toISOString() };
    const recreated = await this.repository.recreations(listed);
    return buildHistoryBundle(
      listed.map((row) => toVersion(row, recreated)),
      cursorLinks(params, selfUrl, next, this.cursors.for(user, 'history')),
      baseUrl,
      complete,
    );
  }

  /**
   * The instant up to which a page's history holds every version (its Bundle's lastUpdated, the
   * next poll's `_since`). Taken before the versions are read: everything stamped before it is
   * committed by then. A later page (a cursor) holds none written since the first page was read
   * (they sort before the cursor), so it says the first page's instant, which its cursor
   * carries: until 2026-12-07 it said its own, and a client polling `_since` the last page's
   * skipped every version written while it paged.
   */
  private async completeUpTo(cursor: { complete?: string } | undefined): Promise<Date> {
    const now = await this.repository.completeUpTo();
    const first = cursor?.complete === undefined ? undefined : new Date(cursor.complete);
    return first !== undefined && first < now ? first : now;
  }

  /**
   * Versions a list may show: restricted records and other patients' records are left out.
   * None is recorded as disclosed: the page records those it shows (see recordListed).
   */
  private async listable(
    user: AuthenticatedUser,
    rows: ResourceHistoryEntity[],
  ): Promise<Listed[]> {
    const contents = new Map(
      rows.filter((row) => !row.deleted).map((row) => [row, parseContent(row)] as const),
    );
    // A record restricted now (or before its deletion) lists none of its versions, those
    // written before it was restricted included.
    const keys = new Map(rows.map((row) => [`${row.resourceType}/${row.id}`, row]));
    const latest = (
      await this.repository.latestLive(
        [...keys.values()].map((row) => ({ type: row.resourceType, id: row.id })),
      )
    ).map((row) => parseContent(row));
    // The documents Binaries name, of the versions listed and of the records now: one query.
    const contexts = await this.contexts.of([...contents.values(), ...latest]);
    const restrictedNow = new Set(
      latest
        .filter((content) => isRestrictedIn(content, contexts.get(content)))
        .map((content) => `${content.resourceType}/${String(content.id)}`),
    );
    // A patient-scoped token lists the versions of a record only while the record, as it is
    // now, is live and in its compartment (see ResourceAccess.confinesTo).
    const confined = [...keys.values()].filter((row) =>
      this.access.confinesTo(user, row.resourceType, 'history'),
    );
    const deletedNow = await this.repository.deletedAmong(
      confined.map((row) => ({ type: row.resourceType, id: row.id })),
    );
    const now = new Map(
      latest.map((content) => [`${content.resourceType}/${String(content.id)}`, content]),
    );
    const shown = rows.filter((row) => {
      const content = contents.get(row);
      const key = `${row.resourceType}/${row.id}`;
      if (restrictedNow.has(key)) return false;
      const current = deletedNow.has(key) ? undefined : now.get(key);
      const context = current && contexts.get(current);
      if (!this.access.showsVersionsNow(user, row.resourceType, current, 'history', context)) {
        return false;
      }
      return content === undefined
        ? this.access.maySeeDeletion(user, row.resourceType, 'history')
        : this.access.isListable(user, content, false, contexts.get(content), 'history');
    });
    return shown.map((row) => {
      const content = contents.get(row);
      return { row, ...(content ? { content, context: contexts.get(content) } : {}) };
    });
  }
}
