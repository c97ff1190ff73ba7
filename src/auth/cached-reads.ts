/**
 * Reads of a small state by id (an account's, an app's), each kept for `ttlMs`: one read for all
 * the requests that arrive while it runs, a failed read not kept, and past `maxEntries` the
 * oldest entries go first.
 */
export class CachedReads<T> {
  private readonly entries = new Map<string, { at: number; value: Promise<T> }>();

  constructor(
    private readonly ttlMs: number,
    private readonly maxEntries: number,
    private readonly read: (id: string) => Promise<T>,
  ) {}

  get(id: string): Promise<T> {
    const now = Date.now();
    const cached = this.entries.get(id);
    if (cached && now - cached.at < this.ttlMs) return cached.value;
    const value = this.read(id);
    value.catch(() => {
      if (this.entries.get(id)?.value === value) this.entries.delete(id);
    });
    this.entries.delete(id);
    if (this.entries.size >= this.maxEntries) {
      // Maps iterate in insertion order: the first key is the oldest.
      this.entries.delete(this.entries.keys().next().value!);
    }
    this.entries.set(id, { at: now, value });
    return value;
  }

  /** Drops what is kept of `id`, so that the next get reads it again (a change made here). */
  forget(id: string): void {
    this.entries.delete(id);
  }
}
