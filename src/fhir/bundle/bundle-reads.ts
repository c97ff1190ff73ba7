import { Injectable } from '@nestjs/common';
import type { AuthenticatedUser } from '../../auth/authenticated-user.js';
import { AppError } from '../../common/errors/app-error.js';
import { queryRecord } from '../../common/http/query-record.js';
import { FhirDefinitions } from '../fhir-definitions.js';
import { notModified, readSubset } from '../fhir-headers.js';
import { FhirHistory } from '../fhir-history.service.js';
import type { FhirResource, StoredResource } from '../fhir-types.js';
import { FhirService } from '../fhir.service.js';
import { PageCursors } from '../cursor.js';
import { historyListParams, historyParams } from '../history-params.js';
import { EverythingService } from '../search/everything.service.js';
import { SearchService } from '../search/search.service.js';
import type { ParsedEntry } from './bundle-entry.js';
import { STATUS_TEXT, written, type EntryResult } from './entry-results.js';

/**
 * A search entry's criteria came in a body, as a POST `_search`'s do: its links carry them
 * sealed in `_state`, as that search's do, not in plaintext (a name, an MRN) in a URL that
 * proxies and logs keep. Until 2026-12-06 they were the entry's URL.
 */
const SEALED = { viaPost: true } as const;

/** The GET entries of a batch or transaction, answered as the requests they stand for. */
@Injectable()
export class BundleReads {
  constructor(
    private readonly fhir: FhirService,
    private readonly histories: FhirHistory,
    private readonly searches: SearchService,
    private readonly everythings: EverythingService,
    private readonly definitions: FhirDefinitions,
    private readonly cursors: PageCursors,
  ) {}

  /** A GET entry: a read (whole or in part), one version, a history, or a search. */
  async get(user: AuthenticatedUser, entry: ParsedEntry, baseUrl: string): Promise<EntryResult> {
    const query = queryRecord(entry.query ?? '');
    const bundle = (resource: object): EntryResult => ({
      resource: resource as FhirResource,
      response: { status: STATUS_TEXT[200]! },
    });
    switch (entry.part?.kind) {
      case 'vread':
        // 304 when the client holds that version, as GET .../_history/{vid} answers (until
        // 2026-12-07 a vread entry was answered whole whatever its ifNoneMatch).
        return this.unlessHeld(
          entry,
          await this.fhir.vread(user, entry.type, entry.id!, entry.part.vid),
        );
      case 'history':
        return bundle(
          await this.histories.history(
            user,
            entry.type,
            entry.id!,
            historyParams(query, entry.type, entry.id!, this.cursors.for(user, 'history')),
            baseUrl,
          ),
        );
      case 'typeHistory':
        return bundle(
          await this.histories.typeHistory(
            user,
            entry.type,
            historyListParams(query, this.cursors.for(user, 'history')),
            baseUrl,
          ),
        );
      case 'lastn':
        if (entry.type !== 'Observation') {
          throw AppError.invalid('$lastn is offered on Observation: Observation/$lastn');
        }
        return bundle(await this.searches.lastN(user, query, baseUrl, SEALED.viaPost));
      case 'everything':
        if (entry.type !== 'Patient') {
          throw AppError.invalid('$everything is offered on Patient: Patient/{id}/$everything');
        }
        return bundle(await this.everythings.everything(user, entry.id!, query, baseUrl));
      case 'compartment': {
        const { compartment, id } = entry.part;
        return bundle(
          await this.searches.compartmentSearch(
            user,
            { type: compartment, id },
            entry.type,
            query,
            baseUrl,
            SEALED,
          ),
        );
      }
      case undefined:
        break;
    }
    if (entry.id === undefined) {
      return bundle(await this.searches.search(user, entry.type, query, baseUrl, SEALED));
    }
    // A read may ask for part of the resource (_summary, _elements), as GET Type/id does, and
    // be answered 304 when the client holds the current version.
    const stored = await this.fhir.read(user, entry.type, entry.id);
    const subset = readSubset(query);
    return this.unlessHeld(
      entry,
      stored,
      subset
        ? { ...stored, resource: this.definitions.subsets.apply(stored.resource, subset) }
        : stored,
    );
  }

  /** A 304 when the entry's ifNoneMatch or ifModifiedSince says the client holds `stored`. */
  private unlessHeld(
    entry: ParsedEntry,
    stored: StoredResource,
    answer: StoredResource = stored,
  ): EntryResult {
    if (notModified(entry.ifNoneMatch, entry.ifModifiedSince, stored)) {
      const { etag, lastModified } = written(stored, 200).response;
      return { response: { status: '304 Not Modified', etag, lastModified } };
    }
    return written(answer, 200);
  }
}
