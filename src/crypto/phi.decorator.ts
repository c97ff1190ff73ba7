import type { DataSource, EntityMetadata } from 'typeorm';

export interface PhiColumnOptions {
  /**
   * Further properties (besides the primary key) whose values the ciphertext is bound to, such
   * as a version number: changing one without re-encrypting makes the value undecryptable.
   */
  bindTo?: string[];
}

export interface PhiColumn {
  property: string;
  bindTo: string[];
}

const registry = new Map<object, PhiColumn[]>();

/**
 * Marks an entity property as PHI: the PHI subscriber encrypts it on every insert and update and
 * decrypts it on load. The column must be `text` with the envelope CHECK constraint.
 */
export function Phi(options: PhiColumnOptions = {}): PropertyDecorator {
  return (target, property) => {
    const columns = registry.get(target.constructor) ?? [];
    columns.push({ property: String(property), bindTo: options.bindTo ?? [] });
    registry.set(target.constructor, columns);
  };
}

/** The PHI columns of an entity class, or an empty list. */
export function phiColumnsOf(entityClass: unknown): readonly PhiColumn[] {
  return (typeof entityClass === 'function' && registry.get(entityClass)) || [];
}

/** The entities that have PHI columns. */
export function phiEntitiesOf(dataSource: DataSource): EntityMetadata[] {
  return dataSource.entityMetadatas.filter((m) => phiColumnsOf(m.target).length > 0);
}

/** The database names of an entity's PHI columns. */
export function phiDatabaseColumnsOf(metadata: EntityMetadata): string[] {
  return phiColumnsOf(metadata.target).map(
    (c) => metadata.findColumnWithPropertyName(c.property)?.databaseName ?? c.property,
  );
}
