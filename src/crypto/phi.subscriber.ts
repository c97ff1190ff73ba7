import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type {
  DataSource,
  EntityMetadata,
  EntitySubscriberInterface,
  EntityTarget,
  InsertEvent,
  LoadEvent,
  ObjectLiteral,
  UpdateEvent,
} from 'typeorm';
import { FieldCipher, type CipherContext } from './field-cipher.js';
import { phiColumnsOf, type PhiColumn } from './phi.decorator.js';

export class PhiWriteError extends Error {
  override readonly name = 'PhiWriteError';
}

/**
 * Encrypts every `@Phi()` property before it is written and decrypts it after it is read.
 * Writes that cannot name the row (QueryBuilder `update()` without the primary key) are refused:
 * the ciphertext is bound to its row, so a partial write would be undecryptable or, worse, plain.
 */
@Injectable()
export class PhiSubscriber implements EntitySubscriberInterface<ObjectLiteral> {
  /** Plaintext values swapped out during a write, put back once the write is done. */
  private readonly pending = new WeakMap<object, Map<string, unknown>>();

  constructor(
    @InjectDataSource() private readonly dataSource: DataSource,
    private readonly cipher: FieldCipher,
  ) {
    dataSource.subscribers.push(this);
  }

  beforeInsert(event: InsertEvent<ObjectLiteral>): void {
    this.encrypt(event.metadata, event.entity);
  }

  beforeUpdate(event: UpdateEvent<ObjectLiteral>): void {
    if (event.entity) {
      this.encrypt(event.metadata, event.entity);
    }
  }

  afterInsert(event: InsertEvent<ObjectLiteral>): void {
    this.restore(event.entity);
  }

  afterUpdate(event: UpdateEvent<ObjectLiteral>): void {
    if (event.entity) {
      this.restore(event.entity);
    }
  }

  afterLoad(entity: ObjectLiteral, event?: LoadEvent<ObjectLiteral>): void {
    const metadata = event?.metadata ?? this.dataSource.getMetadata(entity.constructor);
    for (const column of phiColumnsOf(metadata.target)) {
      const value: unknown = entity[column.property];
      if (typeof value === 'string') {
        entity[column.property] = this.cipher.decrypt(
          value,
          contextOf(metadata, column, entity, 'read'),
        );
      }
    }
  }

  /**
   * A copy of a row read with raw SQL, its PHI columns decrypted as a load through TypeORM
   * would: for readers that must go on past one value that does not decrypt (a page-wide load
   * fails as a whole).
   */
  decrypted<T extends ObjectLiteral>(target: EntityTarget<T>, row: T): T {
    const copy = { ...row };
    this.afterLoad(copy, { metadata: this.dataSource.getMetadata(target) } as LoadEvent<T>);
    return copy;
  }

  /**
   * A copy of a row with its PHI columns encrypted as an insert through TypeORM would write
   * them: for repositories that write rows in their own SQL (several tables in one statement).
   */
  encrypted<T extends ObjectLiteral>(target: EntityTarget<T>, row: T): T {
    const copy = { ...row };
    this.encrypt(this.dataSource.getMetadata(target), copy);
    this.pending.delete(copy);
    return copy;
  }

  private encrypt(metadata: EntityMetadata, entity: ObjectLiteral): void {
    const columns = phiColumnsOf(metadata.target);
    if (columns.length === 0) {
      return;
    }
    const originals = new Map<string, unknown>();
    for (const column of columns) {
      const value: unknown = entity[column.property];
      if (value === undefined) {
        assertNoBoundChange(metadata, column, entity);
        continue;
      }
      if (value === null) {
        continue;
      }
      if (typeof value !== 'string') {
        throw new PhiWriteError(
          `PHI property ${metadata.name}.${column.property} must be a string`,
        );
      }
      originals.set(column.property, value);
      entity[column.property] = this.cipher.encrypt(
        value,
        contextOf(metadata, column, entity, 'write'),
      );
    }
    this.pending.set(entity, originals);
  }

  private restore(entity: ObjectLiteral): void {
    const originals = this.pending.get(entity);
    if (originals) {
      for (const [property, value] of originals) {
        entity[property] = value;
      }
      this.pending.delete(entity);
    }
  }
}

function contextOf(
  metadata: EntityMetadata,
  column: PhiColumn,
  entity: ObjectLiteral,
  operation: 'read' | 'write',
): CipherContext {
  const databaseColumn = metadata.findColumnWithPropertyName(column.property);
  const row = [
    ...metadata.primaryColumns.map((primary) => primary.getEntityValue(entity) as unknown),
    ...column.bindTo.map((property) => entity[property] as unknown),
  ];
  if (!databaseColumn || row.some((value) => value === undefined || value === null)) {
    throw new PhiWriteError(
      `Cannot ${operation} PHI column ${metadata.tableName}.${column.property} without its primary key ` +
        `and bound columns (${[...metadata.primaryColumns.map((c) => c.propertyName), ...column.bindTo].join(', ')}); ` +
        'write PHI entities with insert(), upsert() or save() of whole rows',
    );
  }
  return {
    table: metadata.tableName,
    column: databaseColumn.databaseName,
    row: row.map((value) => (value instanceof Date ? value.toISOString() : String(value))),
  };
}

/** A partial update that changes what a ciphertext is bound to, without rewriting it, is refused. */
function assertNoBoundChange(
  metadata: EntityMetadata,
  column: PhiColumn,
  entity: ObjectLiteral,
): void {
  const bound = [...metadata.primaryColumns.map((c) => c.propertyName), ...column.bindTo];
  const changed = bound.filter((property) => entity[property] !== undefined);
  const isPartial = bound.some((property) => entity[property] === undefined);
  if (isPartial && changed.length > 0) {
    throw new PhiWriteError(
      `Changing ${changed.join(', ')} of ${metadata.tableName} without rewriting PHI column ` +
        `${column.property} would orphan its ciphertext`,
    );
  }
}
