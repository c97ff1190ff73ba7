/**
 * The most reads one page makes to fill itself past rows the caller may not see (another
 * patient's Binaries or versions, records restricted since): past them, the page is sent short
 * with a next link from the last row read, and a client reads on.
 */
export const MAX_PAGE_READS = 10;

/** Rows a read after the first asks for: as many as a page, and at least this. */
const LATER_READ = 100;

export interface FilledPage<R> {
  /** Rows shown, in reading order: at most `count + 1` (one past the page: there is more). */
  kept: R[];
  /** The last row read, when MAX_PAGE_READS ran out with rows left to read. */
  stoppedAt?: R;
}

/**
 * Reads rows in keyset order until `count + 1` of them pass `keep`, or none are left, or
 * MAX_PAGE_READS are made. Filtering a page once read left it short, or empty, while it still
 * had a next link: a client that stops at an empty page stopped there, and `_count` minus the
 * entries told how many hidden records the page had passed (until 2026-12-07).
 *
 * @param read - the rows after `after` (from the list's own start or cursor when undefined),
 *   `limit` at most, in the list's order
 * @param keep - the rows the caller may be shown, in the same order; it must not record them
 *   as disclosed (the row past the page is not shown)
 */
export async function fillPage<R>(
  count: number,
  read: (after: R | undefined, limit: number) => Promise<R[]>,
  keep: (rows: R[]) => Promise<R[]> | R[],
): Promise<FilledPage<R>> {
  const kept: R[] = [];
  let after: R | undefined;
  for (let reads = 0; reads < MAX_PAGE_READS; reads++) {
    // The first read is the page and one more, as when nothing is hidden (the common case).
    const limit = reads === 0 ? count + 1 : Math.max(count + 1, LATER_READ);
    const rows = await read(after, limit);
    kept.push(...(await keep(rows)));
    // `_count=0` reads one row: whether there is any, never a page of them.
    if (kept.length > count || rows.length < limit || count === 0) {
      return { kept: kept.slice(0, count + 1) };
    }
    after = rows[rows.length - 1];
  }
  return after === undefined ? { kept } : { kept, stoppedAt: after };
}

/**
 * The row a next link starts after (previous, paging backwards): the page's last when more
 * were kept, the last read when reading stopped at the bound; none when the rows ran out.
 */
export function edgeOf<R>(filled: FilledPage<R>, count: number): R | undefined {
  if (filled.kept.length > count) return filled.kept[count - 1];
  return filled.stoppedAt;
}
