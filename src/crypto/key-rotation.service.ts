import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { DataSource, EntityManager, EntityMetadata, ObjectLiteral } from 'typeorm';
import { FieldCipher } from './field-cipher.js';
import { phiDatabaseColumnsOf, phiEntitiesOf } from './phi.decorator.js';

export interface RotationProgress {
  table: string;
  done: number;
  total: number;
}

export interface KeyUsage {
  table: string;
  column: string;
  keyId: string;
  rows: number;
}

const BATCH_SIZE = 500;

/**
 * Re-encrypts PHI under the current key. Each batch commits on its own and only rows not yet
 * under the current key are picked, so an interrupted run resumes where it stopped.
 */
@Injectable()
export class KeyRotationService {
  constructor(
    @InjectDataSource() private readonly dataSource: DataSource,
    private readonly cipher: FieldCipher,
  ) {}

  async reencryptAll(onProgress: (progress: RotationProgress) => void): Promise<number> {
    let rewritten = 0;
    for (const metadata of phiEntitiesOf(this.dataSource)) {
      const total = await this.staleQuery(metadata).getCount();
      let done = 0;
      onProgress({ table: metadata.tableName, done, total });
      // Rows others hold locked (an outbound message being sent) are passed over first, so the
      // rest goes on; then waited for, as a run that ended with them left under the old key
      // would report success for a key that cannot yet be retired.
      for (const skipLocked of [true, false]) {
        for (;;) {
          const batch = await this.reencryptBatch(metadata, skipLocked);
          if (batch === 0) {
            break;
          }
          done += batch;
          rewritten += batch;
          onProgress({ table: metadata.tableName, done, total: Math.max(total, done) });
        }
      }
    }
    return rewritten;
  }

  private reencryptBatch(metadata: EntityMetadata, skipLocked: boolean): Promise<number> {
    return this.dataSource.transaction(async (manager) => {
      const query = this.staleQuery(metadata, manager)
        .orderBy(metadata.primaryColumns.map((c) => `e.${c.propertyName}`).join(', '))
        .take(BATCH_SIZE)
        .setLock('pessimistic_write');
      const rows = await (skipLocked ? query.setOnLocked('skip_locked') : query).getMany();
      if (rows.length > 0) {
        // Loaded rows hold plaintext (the subscriber decrypted them); upsert encrypts them
        // again, now under the current key, and keeps every other column as it is.
        await manager.upsert(
          metadata.target,
          rows,
          metadata.primaryColumns.map((c) => c.propertyName),
        );
      }
      return rows.length;
    });
  }

  /** How many values each key protects, per PHI column. */
  async usage(): Promise<KeyUsage[]> {
    const usage: KeyUsage[] = [];
    for (const metadata of phiEntitiesOf(this.dataSource)) {
      for (const column of phiDatabaseColumnsOf(metadata)) {
        const rows = await this.dataSource.query<{ key_id: string; rows: string }[]>(
          `SELECT split_part("${column}", '.', 2) AS key_id, count(*) AS rows FROM "${metadata.tableName}"
           WHERE "${column}" IS NOT NULL GROUP BY 1 ORDER BY 1`,
        );
        for (const row of rows) {
          usage.push({
            table: metadata.tableName,
            column,
            keyId: row.key_id,
            rows: Number(row.rows),
          });
        }
      }
    }
    return usage;
  }

  private staleQuery(metadata: EntityMetadata, manager: EntityManager = this.dataSource.manager) {
    const current = `cv1.${this.cipher.currentKeyId}.%`;
    const stale = phiDatabaseColumnsOf(metadata)
      .map((column) => `(e."${column}" IS NOT NULL AND e."${column}" NOT LIKE :current)`)
      .join(' OR ');
    return manager
      .getRepository<ObjectLiteral>(metadata.target)
      .createQueryBuilder('e')
      .where(stale, { current });
  }
}
