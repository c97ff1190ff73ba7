/**
 * What building one search statement gathers: its positional parameters (every value is bound,
 * never spliced), its subquery aliases, and warnings for the searchset.
 */
export class SqlParams {
  readonly values: unknown[] = [];
  /** Where the statement answers differently from what was asked, for the searchset to say. */
  readonly warnings = new Set<string>();
  private aliases = 0;
  /** The codes `:in` and `:not-in` criteria have expanded to so far (see MAX_EXPANDED). */
  expandedCodes = 0;

  add(value: unknown): string {
    this.values.push(value);
    return `$${this.values.length}`;
  }

  /** How many subqueries the statement has so far (each takes a fresh alias). */
  get subqueries(): number {
    return this.aliases;
  }

  /** A fresh table alias for a subquery. */
  alias(prefix: string): string {
    this.aliases += 1;
    return `${prefix}${this.aliases}`;
  }
}

/** Escapes LIKE wildcards in a value that is matched literally. */
export function likeEscape(value: string): string {
  return value.replace(/[\\%_]/g, (c) => `\\${c}`);
}
