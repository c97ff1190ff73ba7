import type pg from 'pg';
import type { AuditEntry } from '../../src/audit/audit-record.js';
import type { BlindIndexer } from '../../src/crypto/blind-index.js';
import type { FieldCipher } from '../../src/crypto/field-cipher.js';
import type { IndexRows } from '../../src/fhir/search/index-rows.js';
import { appendStatement } from '../../src/audit/audit.repository.js';
import { AUDIT_WRITE_TIMEOUT_MS } from './audit.js';
import { observationRows, patientRows } from './index-rows.js';
import {
  COMMIT,
  insertFirstVersions,
  ROLLBACK,
  SEARCH_ONE_HASH,
  LOCK_LIVE_ROWS,
  SELECT_CURRENT,
  START_TRANSACTION,
  statementName,
  CONFIDENTIALITY,
  type CurrentRow,
  type PageRow,
} from './statements.js';

export type Json = Record<string, unknown>;

/** A first version as written: its JSON (what was encrypted) and its index rows. */
export interface Written {
  resourceType: string;
  id: string;
  lastUpdated: Date;
  content: string;
  index: IndexRows;
}

/** Types the baseline can index: those of the benchmark's bodies. */
export const INDEXED_TYPES = new Set(['Patient', 'Observation']);

const SEARCH_NAME = statementName(SEARCH_ONE_HASH);
const CURRENT_NAME = statementName(SELECT_CURRENT);
const LOCK_NAME = statementName(LOCK_LIVE_ROWS);

/**
 * The baseline's database work, statement for statement what CareVault's repositories send
 * for the same requests, with PHI encrypted (FieldCipher, same contexts as the PHI subscriber:
 * table, column, primary key and version) and keyed blind-index hashes.
 */
export class BaselineStore {
  constructor(
    private readonly pool: pg.Pool,
    private readonly cipher: FieldCipher,
    readonly blind: BlindIndexer,
  ) {}

  /** UnitOfWork.run: one connection, START TRANSACTION … COMMIT, ROLLBACK on any error. */
  async transaction<T>(work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    try {
      await client.query(START_TRANSACTION);
      const result = await work(client);
      await client.query(COMMIT);
      return result;
    } catch (error) {
      await client.query(ROLLBACK).catch(() => undefined);
      throw error;
    } finally {
      client.release();
    }
  }

  /**
   * ResourceRepository.insertFirst for new resources (FhirService.createChecked: a create, or
   * all of a transaction Bundle's creates): each version with the server's id and meta, all of
   * one time, written with its index rows in one statement however many resources there are.
   */
  async insertFirst(
    client: pg.PoolClient,
    creates: readonly { resource: Json; id: string }[],
  ): Promise<Written[]> {
    const lastUpdated = new Date();
    const written = creates.map(({ resource, id }): Written => {
      const resourceType = String(resource['resourceType']);
      const meta = {
        ...(resource['meta'] as Json | undefined),
        versionId: '1',
        lastUpdated: lastUpdated.toISOString(),
      };
      const stored = { ...resource, id, meta };
      const index =
        resourceType === 'Patient' ? patientRows(stored, this.blind) : observationRows(stored);
      return { resourceType, id, lastUpdated, content: JSON.stringify(stored), index };
    });
    const insert = await insertFirstVersions(written, (table, { resourceType, id, content }) =>
      this.cipher.encrypt(content, { table, column: 'content', row: [resourceType, id, '1'] }),
    );
    await client.query(insert.text, insert.values);
    return written;
  }

  /**
   * RetiredPatients.assertWritable for creates, in the order they are written: the Patients each
   * refers to that the transaction has not read yet, read and locked FOR KEY SHARE by one
   * statement (none for a create that names none new), a Patient it creates forgotten so that a
   * later reference to it reads it again. The baseline merges no patients, so nothing it reads
   * is a retired one: what matters here is the statement.
   */
  async lockReferredPatients(
    client: pg.PoolClient,
    creates: readonly { type: string; id: string; referred: string[] }[],
  ): Promise<void> {
    const read = new Set<string>();
    for (const { type, id, referred } of creates) {
      if (type === 'Patient') read.delete(id);
      const unread = referred.filter((patient) => !read.has(patient));
      if (unread.length === 0) continue;
      await client.query({
        name: LOCK_NAME,
        text: LOCK_LIVE_ROWS,
        values: ['Patient', [...unread].sort()],
      });
      for (const patient of unread) read.add(patient);
    }
  }

  /** The audit row of a write, in the write's transaction. */
  async appendAudit(client: pg.PoolClient, entry: AuditEntry): Promise<void> {
    await client.query(appendStatement([entry], AUDIT_WRITE_TIMEOUT_MS));
  }

  /** ResourceRepository.findCurrent, decrypted; undefined when there is no row. */
  async findCurrent(
    resourceType: string,
    id: string,
  ): Promise<
    { versionId: number; lastUpdated: Date; deleted: boolean; content: string | null } | undefined
  > {
    const { rows } = await this.pool.query<CurrentRow>({
      name: CURRENT_NAME,
      text: SELECT_CURRENT,
      values: [resourceType, id],
    });
    const row = rows[0];
    if (!row) return undefined;
    return {
      versionId: row.version_id,
      lastUpdated: row.last_updated,
      deleted: row.deleted,
      content:
        row.content === null ? null : this.decrypt(resourceType, id, row.version_id, row.content),
    };
  }

  /**
   * SearchRepository.page for one keyed hash, as a named prepared statement (preparedQuery):
   * up to 21 rows in id order, content decrypted.
   */
  async searchOneHash(resourceType: string, param: string, hash: string): Promise<PageRow[]> {
    const { rows } = await this.pool.query<PageRow>({
      name: SEARCH_NAME,
      text: SEARCH_ONE_HASH,
      values: [resourceType, hash, param, CONFIDENTIALITY],
    });
    return rows.map((row) => ({
      ...row,
      content: this.decrypt(row.resource_type, row.id, row.version_id, row.content),
    }));
  }

  private decrypt(resourceType: string, id: string, versionId: number, envelope: string): string {
    return this.cipher.decrypt(envelope, {
      table: 'resource',
      column: 'content',
      row: [resourceType, id, String(versionId)],
    });
  }
}
