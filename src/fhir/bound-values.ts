import type { BoundValue } from './value-sets.js';

/**
 * One value set's values, the first at each path. The validator walks a list before it adds a
 * value, to skip one at a path it holds already; this list shows it nothing to walk, and its
 * `push` skips such a value itself, by a Set of paths.
 */
class ValuesByPath {
  readonly values: BoundValue[] = [];
  private readonly paths = new Set<string>();

  push(...values: BoundValue[]): number {
    for (const value of values) {
      if (this.paths.has(value.path)) continue;
      this.paths.add(value.path);
      this.values.push(value);
    }
    return this.values.length;
  }

  [Symbol.iterator](): Iterator<BoundValue> {
    return [][Symbol.iterator]();
  }
}

/**
 * The `collect.tokens` object for @medplum/core's validateResource, which gathers the values of
 * elements with a required binding (ValueSets checks them), and `collected()` to read them.
 * The validator (appendToken, @medplum/core 5.2) walks every value it has collected for a value
 * set before it adds the next, to skip a second one at the same path: quadratic, so a Patient
 * of 20,000 `identifier.use` (320 KB) took 49 s to validate, and one of 1 MB (the default
 * BODY_LIMIT) held the validation worker for its whole 60 s, every other large write waiting,
 * until 2026-12-07. Here each value set's list keeps the first value at each path by a Set,
 * as the validator's walk did, in constant time.
 */
export function boundValueCollector(): {
  tokens: Record<string, BoundValue[]>;
  collected: () => Record<string, BoundValue[]>;
} {
  const lists = new Map<string, ValuesByPath>();
  const target: Record<string, BoundValue[]> = {};
  const tokens = new Proxy(target, {
    get: (_target, key): unknown => (typeof key === 'string' ? lists.get(key) : undefined),
    set: (_target, key, value: BoundValue[] | ValuesByPath) => {
      if (typeof key !== 'string') return false;
      if (value instanceof ValuesByPath) {
        lists.set(key, value);
        return true;
      }
      // The first value of a value set comes as an array of it.
      const list = lists.get(key) ?? new ValuesByPath();
      list.push(...value);
      lists.set(key, list);
      return true;
    },
    ownKeys: () => [...lists.keys()],
    getOwnPropertyDescriptor: (_target, key) =>
      typeof key === 'string' && lists.has(key)
        ? { configurable: true, enumerable: true, writable: true, value: lists.get(key) }
        : undefined,
    has: (_target, key) => typeof key === 'string' && lists.has(key),
  });
  return {
    tokens,
    collected: () => Object.fromEntries([...lists].map(([key, list]) => [key, list.values])),
  };
}
