import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { DataSource, EntityManager, EntityMetadata, ObjectLiteral } from 'typeorm';
import { contextOf, typeOfExportFile } from '../fhir/export/export-files.js';
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
/** Export chunks hold up to 500 lines each: fewer per transaction. */
const CHUNK_BATCH_SIZE = 20;

/** Bulk Data export files: lines encrypted one by one, under the PHI key, in no entity. */
const EXPORT_TABLE = 'export_chunk';
/** A chunk with a line under another key than $1 (each line's envelope names its key). */
const STALE_CHUNK = `EXISTS (SELECT 1 FROM unnest(string_to_array(lines, E'\\n')) AS line
                             WHERE split_part(line, '.', 2) <> $1)`;

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
    return rewritten + (await this.reencryptExportFiles(onProgress));
  }

  /**
   * Export files too: left under the old key, retiring it made every download of them fail
   * (a 500) until their retention ended. Each line is re-encrypted under the context it was
   * written with (its job, type and line number). Counted in rows (chunks), as tables are.
   */
  private async reencryptExportFiles(
    onProgress: (progress: RotationProgress) => void,
  ): Promise<number> {
    const current = this.cipher.currentKeyId;
    const [{ total } = { total: 0 }] = await this.dataSource.query<{ total: number }[]>(
      `SELECT count(*)::int AS total FROM ${EXPORT_TABLE} WHERE ${STALE_CHUNK}`,
      [current],
    );
    let done = 0;
    onProgress({ table: EXPORT_TABLE, done, total });
    for (const skipLocked of [true, false]) {
      for (;;) {
        const batch = await this.dataSource.transaction(async (manager) => {
          const chunks = await manager.query<
            { jobId: string; file: string; firstLine: number; lines: string }[]
          >(
            `SELECT job_id AS "jobId", file, first_line AS "firstLine", lines FROM ${EXPORT_TABLE}
              WHERE ${STALE_CHUNK} ORDER BY job_id, file, first_line LIMIT ${CHUNK_BATCH_SIZE}
              FOR UPDATE${skipLocked ? ' SKIP LOCKED' : ''}`,
            [current],
          );
          for (const chunk of chunks) {
            const type = typeOfExportFile(chunk.file);
            const lines = chunk.lines.split('\n').map((line, index) => {
              const context = contextOf(chunk.jobId, type, chunk.firstLine + index);
              return this.cipher.encrypt(this.cipher.decrypt(line, context), context);
            });
            await manager.query(
              `UPDATE ${EXPORT_TABLE} SET lines = $4 WHERE job_id = $1 AND file = $2 AND first_line = $3`,
              [chunk.jobId, chunk.file, chunk.firstLine, lines.join('\n')],
            );
          }
          return chunks.length;
        });
        if (batch === 0) {
          break;
        }
        done += batch;
        onProgress({ table: EXPORT_TABLE, done, total: Math.max(total, done) });
      }
    }
    return done;
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
    // Export files count by line: each line is a value under a key, as a column's is.
    const lines = await this.dataSource.query<{ key_id: string; rows: string }[]>(
      `SELECT split_part(line, '.', 2) AS key_id, count(*) AS rows
         FROM ${EXPORT_TABLE}, unnest(string_to_array(lines, E'\\n')) AS line GROUP BY 1 ORDER BY 1`,
    );
    for (const row of lines) {
      usage.push({
        table: EXPORT_TABLE,
        column: 'lines',
        keyId: row.key_id,
        rows: Number(row.rows),
      });
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
