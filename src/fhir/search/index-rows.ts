/**
 * The index rows of a Binary's securityContext (search_reference), which no R4 search parameter
 * indexes: a patient-scoped list selects the patient's Binaries by them (the patient, or a
 * record of theirs, named there). Not a parameter a client may search by: a name the
 * definitions do not hold is refused before any SQL.
 */
export const SECURITY_CONTEXT_PARAM = 'securityContext';

/** What one resource version contributes to the search index tables. */
export interface IndexRows {
  tokens: { param: string; system: string | null; code: string }[];
  /** `value` normalized (case, accents, punctuation), `exact` as written (null on `:text` rows). */
  strings: { param: string; value: string; exact: string | null }[];
  dates: { param: string; low: Date; high: Date }[];
  /**
   * `local`: a relative reference (`Patient/1`), to a resource of this server; an absolute URL
   * names the same type and id but may be another server's.
   */
  references: { param: string; targetType: string; targetId: string; local: boolean }[];
  numbers: { param: string; value: number }[];
  /**
   * `code` is the coded unit, else the stated one (rows written before `unit` was); `unit` the
   * stated unit; `comparator` a stated `<`, `<=`, `>=` or `>` (the value is a bound, not a value).
   */
  quantities: {
    param: string;
    value: number;
    system: string | null;
    code: string | null;
    unit: string | null;
    comparator: string | null;
  }[];
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

/** How many rows `rows` holds, duplicates included. */
export function rowCount(rows: IndexRows): number {
  return TABLES.reduce((sum, table) => sum + rows[table].length, 0);
}

/** What tells two rows of one table and parameter apart: equal keys are one row. */
const ROW_KEYS: { [T in keyof IndexRows]: (row: IndexRows[T][number]) => string } = {
  tokens: (r) => (r.system === null ? r.code : `${r.system}\0${r.code}`),
  strings: (r) => (r.exact === null ? r.value : `${r.value}\0${r.exact}`),
  dates: (r) => `${r.low.getTime()}\0${r.high.getTime()}`,
  // The table keeps no column for how a reference was written (see uniqueReferences).
  references: (r) => `${r.targetType}/${r.targetId}`,
  numbers: (r) => String(r.value),
  quantities: (r) =>
    [r.value, r.system, r.code, r.unit, r.comparator]
      .map((part) => (part === null ? '\u0001' : String(part)))
      .join('\0'),
  uris: (r) => r.value,
  blind: (r) => r.hash,
};

const TABLES = Object.keys(ROW_KEYS) as (keyof IndexRows)[];

/** Each row once: a value reached by two paths, or twice in the resource, is indexed once. */
export function dedupe(rows: IndexRows): IndexRows {
  // Seen values by parameter, keyed by the value itself where it is one string (a blind hash):
  // JSON.stringify of every row, and then long concatenated keys, cost a tenth of an HL7
  // message's CPU (a Patient has a hundred hashes).
  const unique = <T extends { param: string }>(items: T[], key: (item: T) => string): T[] => {
    if (items.length < 2) return items;
    const seen = new Map<string, Set<string>>();
    return items.filter((item) => {
      let values = seen.get(item.param);
      if (!values) seen.set(item.param, (values = new Set()));
      const k = key(item);
      return values.has(k) ? false : (values.add(k), true);
    });
  };
  return {
    tokens: unique(rows.tokens, ROW_KEYS.tokens),
    strings: unique(rows.strings, ROW_KEYS.strings),
    dates: unique(rows.dates, ROW_KEYS.dates),
    references: uniqueReferences(rows.references),
    numbers: unique(rows.numbers, ROW_KEYS.numbers),
    quantities: unique(rows.quantities, ROW_KEYS.quantities),
    uris: unique(rows.uris, ROW_KEYS.uris),
    blind: unique(rows.blind, ROW_KEYS.blind),
  };
}

/**
 * Counts the rows that `dedupe` will keep while they are being added (rows are only ever
 * appended), so that a cap on them can stop the work as soon as it is passed.
 */
export class DistinctRowCount {
  /** Keys seen, by table and parameter (as dedupe keeps them: no concatenated keys to build). */
  private readonly seen = new Map<string, Set<string>>();
  private readonly counted = new Map<keyof IndexRows, number>();
  private distinct = 0;

  /** The distinct rows in `rows` so far. */
  of(rows: IndexRows): number {
    for (const table of TABLES) {
      const list = rows[table] as { param: string }[];
      const key = ROW_KEYS[table] as (row: { param: string }) => string;
      let i = this.counted.get(table) ?? 0;
      for (; i < list.length; i++) {
        const row = list[i]!;
        const scope = `${table} ${row.param}`;
        let keys = this.seen.get(scope);
        if (!keys) this.seen.set(scope, (keys = new Set()));
        const k = key(row);
        if (!keys.has(k)) {
          keys.add(k);
          this.distinct++;
        }
      }
      this.counted.set(table, i);
    }
    return this.distinct;
  }
}

/**
 * One row per parameter and target: the table keeps no column for how a reference was written,
 * so `Practitioner/1` and `https://…/Practitioner/1` in one resource made two equal rows, which
 * its unique index refused (a 500). The row is local if either was: reference integrity checks
 * those.
 */
function uniqueReferences(references: IndexRows['references']): IndexRows['references'] {
  if (references.length < 2) return references;
  const kept = new Map<string, IndexRows['references'][number]>();
  for (const reference of references) {
    const key = `${reference.param}\0${reference.targetType}/${reference.targetId}`;
    const first = kept.get(key);
    if (!first) kept.set(key, reference);
    else if (reference.local && !first.local) kept.set(key, { ...first, local: true });
  }
  return [...kept.values()];
}
