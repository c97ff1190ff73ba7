import { AppError } from '../../common/errors/app-error.js';

/**
 * The most resources the read entries of one Bundle return together, as many as one
 * $everything: a response is built whole in memory before it is sent.
 */
export const MAX_READ_RESOURCES = 10_000;

/**
 * What the read entries of one Bundle have returned so far. Reads run while that is under
 * MAX_READ_RESOURCES; each later one is refused, and the client sends it again in a request of
 * its own. Without it, 40 `$everything` entries in a 3.8 KB batch grew the process by 800 MB,
 * and 250 failed with a 500 when the response outgrew the longest string V8 makes.
 */
export class ReadBudget {
  private returned = 0;

  /** Throws a too-costly error once the reads before have returned MAX_READ_RESOURCES. */
  assertRoom(): void {
    if (this.returned >= MAX_READ_RESOURCES) {
      throw AppError.of(
        400,
        'too-costly',
        `The reads of one Bundle return at most ${MAX_READ_RESOURCES} resources together, and the entries before this one have: send it in another request`,
      );
    }
  }

  /** Counts what a read returned (a Bundle's entries, or one resource) and passes it on. */
  spent<T extends { resource?: object }>(result: T): T {
    const entries = (result.resource as { resourceType?: unknown; entry?: unknown } | undefined)
      ?.entry;
    this.returned += Array.isArray(entries) ? entries.length : result.resource ? 1 : 0;
    return result;
  }
}
