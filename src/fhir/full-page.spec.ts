import { edgeOf, fillPage, MAX_PAGE_READS } from './full-page.js';

/** Rows 1..n read in order after `after`, `limit` at most, counting the reads. */
function rowsUpTo(n: number) {
  const reads: number[] = [];
  const read = (after: number | undefined, limit: number): Promise<number[]> => {
    reads.push(limit);
    const from = (after ?? 0) + 1;
    return Promise.resolve(
      Array.from({ length: Math.max(0, Math.min(limit, n - from + 1)) }, (_, i) => from + i),
    );
  };
  return { read, reads };
}

describe('fillPage', () => {
  it('reads once when nothing is hidden', async () => {
    const { read, reads } = rowsUpTo(100);
    const filled = await fillPage(10, read, (rows) => rows);
    expect(filled.kept).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    expect(reads).toEqual([11]);
    expect(edgeOf(filled, 10)).toBe(10);
  });

  it('reads on past hidden rows until the page and one more are kept', async () => {
    const { read } = rowsUpTo(1000);
    const filled = await fillPage(3, read, (rows) => rows.filter((row) => row % 50 === 0));
    expect(filled.kept).toEqual([50, 100, 150, 200]);
    expect(edgeOf(filled, 3)).toBe(150);
  });

  it('has no edge when the rows run out, the page short or not', async () => {
    const { read } = rowsUpTo(120);
    const filled = await fillPage(3, read, (rows) => rows.filter((row) => row % 50 === 0));
    expect(filled.kept).toEqual([50, 100]);
    expect(edgeOf(filled, 3)).toBeUndefined();
  });

  it('stops after MAX_PAGE_READS, its edge the last row read', async () => {
    const { read, reads } = rowsUpTo(1_000_000);
    const filled = await fillPage(2, read, () => []);
    expect(reads).toHaveLength(MAX_PAGE_READS);
    expect(filled.kept).toEqual([]);
    expect(edgeOf(filled, 2)).toBe(3 + 100 * (MAX_PAGE_READS - 1));
  });

  it('reads one row for a count of 0, and has no edge', async () => {
    const { read, reads } = rowsUpTo(10);
    const filled = await fillPage(0, read, () => []);
    expect(reads).toEqual([1]);
    expect(edgeOf(filled, 0)).toBeUndefined();
  });
});
