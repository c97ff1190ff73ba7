/** What one resource version contributes to the search index tables. */
export interface IndexRows {
  tokens: { param: string; system: string | null; code: string }[];
  strings: { param: string; value: string }[];
  dates: { param: string; low: Date; high: Date }[];
  /**
   * `local`: a relative reference (`Patient/1`), to a resource of this server; an absolute URL
   * names the same type and id but may be another server's.
   */
  references: { param: string; targetType: string; targetId: string; local: boolean }[];
  numbers: { param: string; value: number }[];
  quantities: { param: string; value: number; system: string | null; code: string | null }[];
  uris: { param: string; value: string }[];
  /** Keyed hashes of PHI values (exact, prefix, date buckets): never the value itself. */
  blind: { param: string; hash: string }[];
}

export function emptyRows(): IndexRows {
  return {
    tokens: [],
    strings: [],
    dates: [],
    references: [],
    numbers: [],
    quantities: [],
    uris: [],
    blind: [],
  };
}

/** Each row once: a value reached by two paths, or twice in the resource, is indexed once. */
export function dedupe(rows: IndexRows): IndexRows {
  const unique = <T>(items: T[]): T[] => {
    const seen = new Set<string>();
    return items.filter((item) => {
      const key = JSON.stringify(item);
      return seen.has(key) ? false : (seen.add(key), true);
    });
  };
  return {
    tokens: unique(rows.tokens),
    strings: unique(rows.strings),
    dates: unique(rows.dates),
    references: unique(rows.references),
    numbers: unique(rows.numbers),
    quantities: unique(rows.quantities),
    uris: unique(rows.uris),
    blind: unique(rows.blind),
  };
}
