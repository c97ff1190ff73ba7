import {
  Injectable,
  Logger,
  type OnApplicationBootstrap,
  type OnApplicationShutdown,
} from '@nestjs/common';
import { AppConfig } from '../../config/config.js';
import { ownFhirHost } from '../literal-reference.js';
import { SearchIndexStateRepository } from './search-index-state.repository.js';

/**
 * The version of what indexing writes for a stored resource. Raise it with any change that
 * makes the rows of a resource written before differ from what this version would write (a new
 * parameter or column, a value normalized or hashed another way, a range widened): a service
 * on a database indexed by a lower version then asks the operator for `search:reindex`, as
 * searches miss what changed for those resources until it runs. 1 is the index as of
 * 2026-12-06: `:exact` strings, quantity units and comparators, hashed value-strings and
 * identifiers, leap seconds, Timings, dates before 1800 (see README, "Upgrading"). 2, of
 * 2026-12-06: absolute references typed by their URL (`patient` reads them as `subject` does),
 * another server's kept apart from this one's by PUBLIC_URL. 3, of 2026-12-07: strings folded
 * beyond lower case (ß, ı, final ς, đ, ø, ł) and invisible format characters dropped
 * (`normalizeString`); searches also look up the older form until the rebuild. 4, of
 * 2026-12-07: a Binary's securityContext (SECURITY_CONTEXT_PARAM), by which a patient-scoped
 * list selects the patient's Binaries; one written before has none, and is not listed to a
 * patient-scoped token until the rebuild (it still opens by id). 5, of 2026-12-07: prefixes of
 * names, addresses and free text cut on characters (code points), not UTF-16 units, which
 * changes the rows of values with characters outside the Basic Multilingual Plane (𠮷, emoji)
 * only; searches also look up the older prefix until the rebuild (unitPrefixTerm). 6, of
 * 2026-12-07: names keep the combining marks that spell them (Brahmic vowel signs and viramas,
 * kana voicing marks, Thai vowels and tones) and Hangul is recomposed into syllables
 * (`normalizeString`); searches also look up the form with every mark dropped until the rebuild
 * (`unmarkedNormalizeString`).
 */
export const SEARCH_INDEX_VERSION = 6;

/** The index version from which names are indexed in their current form only (normalizeString). */
const CURRENT_NAME_FORMS = 3;

/** The index version from which prefixes are cut on code points (stringTerms). */
const CURRENT_PREFIXES = 5;

/** The index version from which names keep the marks that spell them (normalizeString). */
const CURRENT_MARKS = 6;

/** How often a service on an older index reads again whether it was rebuilt (by the CLI). */
const RECHECK_MS = 60_000;

/** Tells the operator, at start, when the stored index is not what this version would write. */
@Injectable()
export class SearchIndexStatus implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('SearchIndex');
  private olderForms = true;
  private olderPrefixes = true;
  private olderMarks = true;
  private recheck: NodeJS.Timeout | undefined;

  constructor(
    private readonly state: SearchIndexStateRepository,
    private readonly config: AppConfig,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    // Only the service: a command reindexes, or has no searches to miss, and keeps looking up
    // the older name forms too (they find the same records), reading nothing at start; a
    // `restore` starts on a database that has no tables yet.
    if (!this.config.isService) {
      return;
    }
    await this.refreshForms();
    if (this.olderMarks) {
      // `search:reindex` runs in another process: its end is read from the database.
      this.recheck = setInterval(() => {
        this.refreshForms().catch(() => undefined);
      }, RECHECK_MS);
      this.recheck.unref();
    }
    const since = await this.staleSince();
    if (since !== undefined) {
      this.logger.warn(this.warning(since));
      return;
    }
    const builtFor = await this.builtForOtherHost();
    if (builtFor !== undefined) {
      this.logger.warn(this.hostWarning(builtFor));
    }
  }

  onApplicationShutdown(): void {
    clearInterval(this.recheck);
  }

  /**
   * Whether rows may remain that were indexed before names were indexed in their current form
   * only (index version 3): name searches then look up the older form too (searchForms), an
   * extra hash and probe per value. Until 2026-12-07 they did so for ever; once
   * search_index_state says every row is at 3 or later (a rebuild ran, or nothing was stored
   * before), they do not.
   */
  get legacyForms(): boolean {
    return this.olderForms;
  }

  /**
   * Whether rows may remain whose prefixes were cut in UTF-16 units (before index version 5):
   * starts-with searches then look up such a prefix too where it differs (unitPrefixTerm), for
   * values with characters outside the Basic Multilingual Plane only. Like legacyForms, it is
   * false once search_index_state says every row is at 5 or later.
   */
  get unitPrefixes(): boolean {
    return this.olderPrefixes;
  }

  /**
   * Whether rows may remain whose names were indexed with every combining mark dropped and
   * Hangul in jamo (before index version 6): string searches then look up that form too where
   * it differs (unmarkedNormalizeString). Like legacyForms, it is false once search_index_state
   * says every row is at 6 or later.
   */
  get unmarkedForms(): boolean {
    return this.olderMarks;
  }

  /**
   * Reads search_index_state again for legacyForms, unitPrefixes and unmarkedForms (at start,
   * then each minute until rebuilt).
   */
  async refreshForms(): Promise<void> {
    const built = await this.state.built();
    this.olderForms = built === undefined || built.version < CURRENT_NAME_FORMS;
    this.olderPrefixes = built === undefined || built.version < CURRENT_PREFIXES;
    this.olderMarks = built === undefined || built.version < CURRENT_MARKS;
    if (!this.olderMarks) clearInterval(this.recheck);
  }

  /**
   * The version that built the stored index when it is older than this one's ('before 1' when
   * none was recorded), else undefined. A database without resources has nothing to rebuild:
   * it is recorded as this version's, as everything written from now on is indexed by it.
   */
  async staleSince(): Promise<string | undefined> {
    const built = await this.state.built();
    if (built !== undefined && built.version >= SEARCH_INDEX_VERSION) {
      return undefined;
    }
    if (!(await this.state.holdsResources())) {
      await this.rebuilt();
      return undefined;
    }
    return built === undefined ? 'before 1' : String(built.version);
  }

  /**
   * The PUBLIC_URL host the stored index was built for ('unset' for none) when it is not this
   * process's, else undefined. Another server's reference is indexed by its whole URL with
   * PUBLIC_URL and by its type and id without it: set after a rebuild, another server's
   * Patient/1 stays in this server's Patient/1 compartment until the next one.
   */
  async builtForOtherHost(): Promise<string | undefined> {
    const built = await this.state.built();
    const recorded = built?.publicHost ?? null;
    if (built === undefined || recorded === (ownFhirHost() ?? null)) {
      return undefined;
    }
    if (!(await this.state.holdsResources())) {
      await this.rebuilt();
      return undefined;
    }
    return recorded ?? 'unset';
  }

  /** What the log says: no PHI, only versions and what to run. */
  warning(since: string): string {
    return (
      `The search index was built by an earlier CareVault (index version ${since}, this one ` +
      `writes ${SEARCH_INDEX_VERSION}): searches miss records written before the upgrade ` +
      'where indexing changed since, until `npm run cli -- search:reindex` runs (safe while ' +
      'the service runs; see README, "Upgrading")'
    );
  }

  /** What the log says when PUBLIC_URL changed since the index was built. */
  hostWarning(builtFor: string): string {
    const now = ownFhirHost() ?? 'unset';
    return (
      `The search index was built with PUBLIC_URL's host ${builtFor}, this service runs with ` +
      `${now}: references to other servers' resources are read as this one's, or this one's ` +
      "as another's, until `npm run cli -- search:reindex` runs (safe while the service " +
      'runs; see README, "Upgrading")'
    );
  }

  /** After a rebuild of every resource: the index is this version's, for this PUBLIC_URL. */
  async rebuilt(): Promise<void> {
    await this.state.record({
      version: SEARCH_INDEX_VERSION,
      publicHost: ownFhirHost() ?? null,
    });
    await this.refreshForms();
  }
}
