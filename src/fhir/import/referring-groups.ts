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
  referenceEdges(items, entryOf).forEach((targets, index) => {
    for (const target of targets) parent[root(target)] = root(index);
  });
  const groups = new Map<number, T[]>();
  items.forEach((item, index) => {
    const group = root(index);
    groups.set(group, [...(groups.get(group) ?? []), item]);
  });
  return [...groups.values()];
}

/**
 * A group's items split into the smallest sets that can be stored each on its own, in an order
 * that stores what a set refers to before the set: the strongly connected components of the
 * references among them. A merged Patient pair, each naming the other, is one; an Observation
 * that waits for the pair is one of its own, after it. Tarjan's algorithm (which completes a
 * component only after every component it reaches), without recursion: a chain of references
 * may be as long as a file. Items in each set keep the order they came in.
 */
export function storableParts<T>(items: readonly T[], entryOf: (item: T) => ImportEntry): T[][] {
  const edges = referenceEdges(items, entryOf);
  const order: (number | undefined)[] = items.map(() => undefined);
  const low: number[] = items.map(() => 0);
  const onStack = items.map(() => false);
  const stack: number[] = [];
  const parts: T[][] = [];
  let visited = 0;
  const path: { node: number; next: number }[] = [];
  const visit = (node: number): void => {
    order[node] = low[node] = visited++;
    stack.push(node);
    onStack[node] = true;
    path.push({ node, next: 0 });
  };
  for (const start of items.keys()) {
    if (order[start] !== undefined) continue;
    visit(start);
    while (path.length > 0) {
      const frame = path.at(-1)!;
      const target = edges[frame.node]![frame.next++];
      if (target !== undefined) {
        if (order[target] === undefined) visit(target);
        else if (onStack[target]) low[frame.node] = Math.min(low[frame.node]!, order[target]);
        continue;
      }
      path.pop();
      const caller = path.at(-1);
      if (caller) low[caller.node] = Math.min(low[caller.node]!, low[frame.node]!);
      if (low[frame.node] !== order[frame.node]) continue;
      const part: number[] = [];
      let member: number;
      do {
        member = stack.pop()!;
        onStack[member] = false;
        part.push(member);
      } while (member !== frame.node);
      parts.push(part.sort((a, b) => a - b).map((index) => items[index]!));
    }
  }
  return parts;
}

/** For each item, the items it refers to (by index). */
function referenceEdges<T>(items: readonly T[], entryOf: (item: T) => ImportEntry): number[][] {
  const byKey = new Map<string, number>();
  items.forEach((item, index) => {
    const key = keyOf(entryOf(item));
    if (key !== undefined) byKey.set(key, index);
  });
  return items.map((item) =>
    [...referencesIn(entryOf(item).resource)].flatMap((reference) => {
      const target = byKey.get(reference);
      return target === undefined ? [] : [target];
    }),
  );
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
