import { BackupError } from './backup-error.js';

/** A foreign key of `table` referring to `references`, as pg_constraint lists it. */
export interface ForeignKey {
  table: string;
  references: string;
}

/**
 * The tables in an order where every table comes after the tables its foreign keys refer to, so
 * that a restore, copying them one by one into one transaction, never meets a row whose parent
 * is still to come (a key that cannot be deferred is checked at each COPY). Ties go by name, so
 * the order is the same on every run. A table's keys on itself are left out: one COPY writes all
 * its rows before its keys are checked, in any row order.
 *
 * Tables that refer to each other in a cycle have no such order: throws, naming them, before a
 * backup is written that could not be restored. The keys passed are those that cannot be
 * deferred; a DEFERRABLE one (the restore defers them all to its commit) breaks a cycle.
 */
export function foreignKeyOrder(tables: string[], keys: ForeignKey[]): string[] {
  const known = new Set(tables);
  const parents = new Map<string, Set<string>>(tables.map((table) => [table, new Set()]));
  for (const { table, references } of keys) {
    if (table !== references && known.has(table) && known.has(references)) {
      parents.get(table)!.add(references);
    }
  }
  const order: string[] = [];
  const placed = new Set<string>();
  const waiting = [...tables].sort();
  while (waiting.length > 0) {
    const next = waiting.findIndex((table) =>
      [...parents.get(table)!].every((parent) => placed.has(parent)),
    );
    if (next < 0) {
      throw new BackupError(
        `Tables ${waiting.join(', ')} have no order a restore could follow: some of them refer ` +
          'to each other in a cycle of foreign keys that cannot be deferred; make one DEFERRABLE',
      );
    }
    const [table] = waiting.splice(next, 1);
    order.push(table!);
    placed.add(table!);
  }
  return order;
}
