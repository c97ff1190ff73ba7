import type { ImportUnit } from './import-sources.js';

type ImportEntry = NonNullable<ImportUnit['bundle']['entry']>[number];

const RELATIVE = /^([A-Z][A-Za-z]+\/[A-Za-z0-9.-]{1,64})(\/_history\/[^/]+)?$/;

/**
 * The items grouped by the references among their entries: two entries are in one group when
 * one refers to the other (`Patient/p2` in Patient/p1's link), or both are in a group with a
 * third, so a merged Patient pair and the Observations that wait for either are one group. An
 * entry that refers to none of the others, and that none refers to, is a group of its own.
 * Groups and the items in each keep the order the items came in.
 */
export function referringGroups<T>(items: readonly T[], entryOf: (item: T) => ImportEntry): T[][] {
  const parent = items.map((_, index) => index);
  const root = (index: number): number => {
    while (parent[index]! !== index) {
      parent[index] = parent[parent[index]!]!;
      index = parent[index]!;
    }
    return index;
  };
  const byKey = new Map<string, number>();
  items.forEach((item, index) => {
    const key = keyOf(entryOf(item));
    if (key !== undefined) byKey.set(key, index);
  });
  items.forEach((item, index) => {
    for (const reference of referencesIn(entryOf(item).resource)) {
      const target = byKey.get(reference);
      if (target !== undefined) parent[root(target)] = root(index);
    }
  });
  const groups = new Map<number, T[]>();
  items.forEach((item, index) => {
    const group = root(index);
    groups.set(group, [...(groups.get(group) ?? []), item]);
  });
  return [...groups.values()];
}

/** `Type/id` of the resource an entry writes, when it names it (a PUT, a resource with an id). */
function keyOf(entry: ImportEntry): string | undefined {
  const url = (entry.request as { url?: unknown } | undefined)?.url;
  if (typeof url === 'string' && RELATIVE.test(url)) return url;
  const { resourceType, id } = entry.resource ?? {};
  return resourceType && id ? `${resourceType}/${id}` : undefined;
}

/** Every relative reference (`Type/id`, a version left off) anywhere in a value. */
function referencesIn(value: unknown, found = new Set<string>()): Set<string> {
  if (Array.isArray(value)) {
    for (const item of value) referencesIn(item, found);
  } else if (typeof value === 'object' && value !== null) {
    for (const [key, item] of Object.entries(value)) {
      const match = key === 'reference' && typeof item === 'string' && RELATIVE.exec(item);
      if (match) found.add(match[1]!);
      else referencesIn(item, found);
    }
  }
  return found;
}
