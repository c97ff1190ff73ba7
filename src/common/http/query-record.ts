/** Query parameters by name, a repeated name as a list, as a controller's @Query() gives them. */
export type QueryRecord = Record<string, string | string[]>;

/**
 * A query string or form body as a record. The record has no prototype: a parameter named
 * `constructor` or `toString` is a parameter like any other, where on a plain `{}` it was found
 * "already set" (to the inherited function) and became a list, and `__proto__` replaced the
 * record's prototype, so that the parameter vanished.
 */
export function queryRecord(text: string): QueryRecord {
  const record = Object.create(null) as QueryRecord;
  for (const [name, value] of new URLSearchParams(text)) {
    const previous = record[name];
    record[name] = previous === undefined ? value : [...[previous].flat(), value];
  }
  return record;
}
