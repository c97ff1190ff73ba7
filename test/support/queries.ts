import type { DataSource } from 'typeorm';

type Query = (query: unknown, values?: unknown, ...rest: unknown[]) => unknown;

/**
 * The statements `work` sends that `counted` selects (by their text, and their values as JSON),
 * caught at node-postgres's client, where prepared statements go too: their texts, in order.
 */
export async function queriesWhere(
  db: DataSource,
  counted: (text: string, values: string) => boolean,
  work: () => Promise<unknown>,
): Promise<string[]> {
  const runner = db.createQueryRunner();
  const client = (await runner.connect()) as object;
  const prototype = Object.getPrototypeOf(client) as { query: Query };
  await runner.release();
  const original = prototype.query;
  const texts: string[] = [];
  prototype.query = function (this: unknown, query: unknown, values?: unknown, ...rest) {
    const { text, values: given } =
      typeof query === 'string'
        ? { text: query, values }
        : (query as { text?: string; values?: unknown });
    if (text !== undefined && counted(text, JSON.stringify(given ?? []))) texts.push(text);
    return original.call(this, query, values, ...rest);
  };
  try {
    await work();
  } finally {
    prototype.query = original;
  }
  return texts;
}
