import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { DataSource, EntityMetadata, ObjectLiteral } from 'typeorm';
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
  /** Values that are not an encryption envelope (plaintext or a benchmark's marker). */
  notEnvelopes: number;
  /** Rows whose values did not decrypt (GCM tag or AAD check failed). */
  undecryptable: number;
}

export interface LastBackup {
  recordedAt: Date;
  detail: string;
}

/** An encrypted value as the PHI subscriber writes it: cv1.<key id>.<iv>.<ciphertext>.<tag>. */
const ENVELOPE = /^cv1\.k[0-9a-f]{12}\.[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]{22}$/;

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
   * Takes up to `limit` recent rows of every PHI column: checks the stored value is an
   * encryption envelope, then loads the rows through the entity (the subscriber decrypts them,
   * verifying each GCM tag against the row's AAD). Counts only; no value leaves this method.
   */
  async samplePhi(limit: number): Promise<PhiSample[]> {
    const samples: PhiSample[] = [];
    for (const metadata of phiEntitiesOf(this.dataSource)) {
      const keys = metadata.primaryColumns.map((column) => `"${column.databaseName}"`).join(', ');
      for (const column of phiDatabaseColumnsOf(metadata)) {
        const rows = await this.dataSource.query<{ value: string }[]>(
          `SELECT "${column}" AS value FROM "${metadata.tableName}"
            WHERE "${column}" IS NOT NULL ORDER BY ${keys} DESC LIMIT $1`,
          [limit],
        );
        samples.push({
          table: metadata.tableName,
          column,
          sampled: rows.length,
          notEnvelopes: rows.filter((row) => !ENVELOPE.test(row.value)).length,
          undecryptable: await this.undecryptable(metadata, limit),
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

  private async undecryptable(metadata: EntityMetadata, limit: number): Promise<number> {
    const repository = this.dataSource.getRepository<ObjectLiteral>(metadata.target);
    const order = Object.fromEntries(
      metadata.primaryColumns.map((column) => [column.propertyName, 'DESC' as const]),
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
