import { Injectable, type OnModuleInit } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import { BlindIndexRoot } from './blind-index-root.js';
import { FieldCipher } from './field-cipher.js';
import { KeyConfigError, KeyStore } from './key-store.js';
import { phiDatabaseColumnsOf, phiEntitiesOf } from './phi.decorator.js';

/** Values read per PHI column: a few milliseconds at start, whatever the table's size. */
const SAMPLE_ROWS = 1000;

/**
 * Refuses to start a service whose keys cannot read the PHI already stored: a wrong
 * PHI_MASTER_KEY, a lost key file (in development a new one is generated in its place), a key
 * file restored from before a rotation. Started anyway, it answered 500 to every read of those
 * records and wrote new ones under a key the others do not share, splitting the data between
 * two keys. Each PHI column is sampled (the first values PostgreSQL finds, not a full scan): a
 * wrong key source shows in any value; `keys:status` counts every value by key.
 * Then the blind-index root: one the data is not keyed by is refused too (BlindIndexRoot).
 * Runs in the service only, after the migrations (the root module's hooks come last), so the
 * admin CLI still starts to show what is stored.
 */
@Injectable()
export class PhiKeyCheck implements OnModuleInit {
  constructor(
    @InjectDataSource() private readonly dataSource: DataSource,
    private readonly cipher: FieldCipher,
    private readonly store: KeyStore,
    private readonly root: BlindIndexRoot,
  ) {}

  async onModuleInit(): Promise<void> {
    await this.checkPhiKeys();
    await this.root.verify();
  }

  private async checkPhiKeys(): Promise<void> {
    const unknown = new Map<string, string[]>();
    for (const [table, column] of await this.storedPhiColumns()) {
      // The envelope's head only (`cv1.<key id>.`): a record's whole value is not read.
      const rows = await this.dataSource.query<{ key_id: string }[]>(
        `SELECT DISTINCT split_part(head, '.', 2) AS key_id
         FROM (SELECT left("${column}", 32) AS head FROM "${table}" WHERE "${column}" IS NOT NULL
               LIMIT ${SAMPLE_ROWS}) AS sample`,
      );
      for (const { key_id: keyId } of rows) {
        if (!this.cipher.knowsKey(keyId)) {
          unknown.set(keyId, [...(unknown.get(keyId) ?? []), `${table}.${column}`]);
        }
      }
    }
    if (unknown.size === 0) {
      return;
    }
    const keys = [...unknown].map(([id, where]) => `${id} (${where.join(', ')})`).join(', ');
    const path = this.store.keyFilePath;
    const source = path ? `the key file ${path}` : 'PHI_MASTER_KEY';
    throw new KeyConfigError(
      `The database holds PHI encrypted under keys that ${source} does not have: ${keys}. ` +
        'Started so, the service could not read those records and would write new ones under ' +
        'another key. Start it with the keys the data was written with (PHI_MASTER_KEY or ' +
        'PHI_KEY_FILE, restored from backup if need be); a newly generated key cannot read them.',
    );
  }

  /** The PHI columns the schema has: a migration not yet applied has not made its columns. */
  private async storedPhiColumns(): Promise<[string, string][]> {
    const existing = new Set(
      (
        await this.dataSource.query<{ name: string }[]>(
          `SELECT table_name || '.' || column_name AS name FROM information_schema.columns
           WHERE table_schema = current_schema()`,
        )
      ).map((row) => row.name),
    );
    return phiEntitiesOf(this.dataSource).flatMap((metadata) =>
      phiDatabaseColumnsOf(metadata)
        .filter((column) => existing.has(`${metadata.tableName}.${column}`))
        .map((column): [string, string] => [metadata.tableName, column]),
    );
  }
}
