import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { DataSource, EntityMetadata, ObjectLiteral } from 'typeorm';
import type { ColumnMetadata } from 'typeorm/metadata/ColumnMetadata.js';
import { UNENCRYPTED_KEY_ID } from '../crypto/field-cipher.js';
import { phiDatabaseColumnsOf, phiEntitiesOf } from '../crypto/phi.decorator.js';

export interface UserFacts {
  active: number;
  distinctNames: number;
  adminsWithoutMfa: string[];
  activeAdmins: number;
  hashAlgorithms: Record<string, number>;
}

export interface PhiSample {
  table: string;
  column: string;
  sampled: number;
  /** Values that are not an encryption envelope (plaintext written around the subscriber). */
  notEnvelopes: number;
  /**
   * Envelopes of the benchmark switch PHI_ENCRYPTION_BENCHMARK_SKIP: shaped like the others,
   * under the key id UNENCRYPTED_KEY_ID, but their body is the plaintext.
   */
  unencrypted: number;
  /** Rows whose values did not decrypt (GCM tag or AAD check failed). */
  undecryptable: number;
}

export interface LastBackup {
  recordedAt: Date;
  detail: string;
}

/** An encrypted value as the PHI subscriber writes it: cv1.<key id>.<iv>.<ciphertext>.<tag>. */
const ENVELOPE = /^cv1\.k[0-9a-f]{12}\.[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]{22}$/;
const UNENCRYPTED = `cv1.${UNENCRYPTED_KEY_ID}.`;

/**
 * The columns that say when a row was written, by preference: the sample is of recent values,
 * where new plaintext would show first. lastUpdated is a resource version's write.
 */
const WRITTEN_AT = ['lastUpdated', 'receivedAt', 'createdAt'];

/** What the compliance report reads from the database: facts, never PHI. */
@Injectable()
export class ComplianceRepository {
  constructor(@InjectDataSource() private readonly dataSource: DataSource) {}

  async users(): Promise<UserFacts> {
    const [counts] = await this.dataSource.query<{ active: string; names: string }[]>(
      `SELECT count(*) FILTER (WHERE active) AS active, count(DISTINCT lower(username)) AS names
         FROM app_user`,
    );
    const admins = await this.dataSource.query<{ username: string; mfa: boolean }[]>(
      `SELECT username, mfa_enabled AS mfa FROM app_user WHERE active AND 'admin' = ANY(roles)`,
    );
    const hashes = await this.dataSource.query<{ algorithm: string; n: string }[]>(
      `SELECT split_part(password_hash, '$', 2) AS algorithm, count(*) AS n
         FROM app_user WHERE active GROUP BY 1`,
    );
    const [all] = await this.dataSource.query<{ n: string }[]>(
      `SELECT count(*) AS n FROM app_user`,
    );
    return {
      active: Number(counts!.active),
      distinctNames: Number(counts!.names) === Number(all!.n) ? Number(counts!.active) : -1,
      activeAdmins: admins.length,
      adminsWithoutMfa: admins.filter((admin) => !admin.mfa).map((admin) => admin.username),
      hashAlgorithms: Object.fromEntries(hashes.map((row) => [row.algorithm, Number(row.n)])),
    };
  }

  /**
   * Takes up to `limit` of the most recently written rows of every PHI column (by the table's
   * WRITTEN_AT column, then its primary key; by primary key alone in a table without one):
   * checks the stored value is an encryption envelope, and not the benchmark switch's
   * plaintext one, then loads the rows through the entity (the subscriber decrypts them,
   * verifying each GCM tag against the row's AAD). Counts only; no value leaves this method.
   */
  async samplePhi(limit: number): Promise<PhiSample[]> {
    const samples: PhiSample[] = [];
    for (const metadata of phiEntitiesOf(this.dataSource)) {
      const order = recentFirst(metadata);
      const orderBy = order.map((column) => `"${column.databaseName}" DESC`).join(', ');
      for (const column of phiDatabaseColumnsOf(metadata)) {
        const rows = await this.dataSource.query<{ value: string }[]>(
          `SELECT "${column}" AS value FROM "${metadata.tableName}"
            WHERE "${column}" IS NOT NULL ORDER BY ${orderBy} LIMIT $1`,
          [limit],
        );
        const envelopes = rows.filter((row) => ENVELOPE.test(row.value));
        samples.push({
          table: metadata.tableName,
          column,
          sampled: rows.length,
          notEnvelopes: rows.length - envelopes.length,
          unencrypted: envelopes.filter((row) => row.value.startsWith(UNENCRYPTED)).length,
          undecryptable: await this.undecryptable(metadata, order, limit),
        });
      }
    }
    return samples;
  }

  /** The last successful `backup` command in the audit trail. */
  async lastBackup(): Promise<LastBackup | undefined> {
    const [row] = await this.dataSource.query<{ recorded_at: Date; detail: string }[]>(
      `SELECT recorded_at, detail FROM audit_event
        WHERE source = 'cli' AND subtype = 'backup' AND outcome = 'success'
        ORDER BY chain_seq DESC LIMIT 1`,
    );
    return row ? { recordedAt: row.recorded_at, detail: row.detail } : undefined;
  }

  async breakGlassGrants(days: number): Promise<number> {
    const [row] = await this.dataSource.query<{ n: string }[]>(
      `SELECT count(*) AS n FROM break_glass_grant WHERE created_at > now() - make_interval(days => $1)`,
      [days],
    );
    return Number(row!.n);
  }

  private async undecryptable(
    metadata: EntityMetadata,
    columns: ColumnMetadata[],
    limit: number,
  ): Promise<number> {
    const repository = this.dataSource.getRepository<ObjectLiteral>(metadata.target);
    const order = Object.fromEntries(
      columns.map((column) => [column.propertyName, 'DESC' as const]),
    );
    try {
      await repository.find({ order, take: limit });
      return 0;
    } catch {
      // One bad value fails the whole page: count the page as undecryptable.
      return limit;
    }
  }
}

/** The newest rows first: by when they were written, then by primary key (a stable order). */
function recentFirst(metadata: EntityMetadata): ColumnMetadata[] {
  const writtenAt = WRITTEN_AT.map((name) => metadata.findColumnWithPropertyName(name)).find(
    (column) => column !== undefined,
  );
  return [...(writtenAt ? [writtenAt] : []), ...metadata.primaryColumns];
}
