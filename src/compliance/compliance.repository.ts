import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { Client } from 'pg';
import type { ConnectionOptions } from 'node:tls';
import type { DataSource, EntityMetadata, ObjectLiteral } from 'typeorm';
import type { ColumnMetadata } from 'typeorm/metadata/ColumnMetadata.js';
import { belowPasswordHash } from '../auth/password.js';
import { UNENCRYPTED_KEY_ID } from '../crypto/field-cipher.js';
import { phiColumnsOf, phiEntitiesOf, type PhiColumn } from '../crypto/phi.decorator.js';
import { PhiSubscriber } from '../crypto/phi.subscriber.js';

export interface UserFacts {
  active: number;
  distinctNames: number;
  adminsWithoutMfa: string[];
  activeAdmins: number;
  hashAlgorithms: Record<string, number>;
  /** Active accounts hashed with less memory or fewer passes than PASSWORD_HASH. */
  hashesBelowDefault: number;
}

export interface PhiSample {
  table: string;
  column: string;
  sampled: number;
  /** Values that are not an encryption envelope (plaintext written around the subscriber). */
  notEnvelopes: number;
  /**
   * Envelopes of the benchmark switch PHI_ENCRYPTION_BENCHMARK_SKIP: shaped like the others,
   * under the key id UNENCRYPTED_KEY_ID, but their body is the plaintext and their tag zeros,
   * so they have nothing to authenticate them.
   */
  unencrypted: number;
  /**
   * The other values that did not decrypt (GCM tag or AAD check failed: altered, or moved from
   * another row or column; an unknown key; not an envelope at all).
   */
  undecryptable: number;
}

/** How this process reaches PostgreSQL, as its own connection is, not as the URL reads. */
export interface DatabaseTransport {
  /** The host connected to; a Unix socket's directory starts with `/`. */
  host: string;
  /** The server's view of this connection (pg_stat_ssl): TLS, and its version, or undefined. */
  tlsVersion: string | undefined;
  /** Whether the client refuses a server certificate it cannot verify (not no-verify, prefer). */
  verifiesServer: boolean;
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
  constructor(
    @InjectDataSource() private readonly dataSource: DataSource,
    private readonly phi: PhiSubscriber,
  ) {}

  async users(): Promise<UserFacts> {
    const [counts] = await this.dataSource.query<{ active: string; names: string }[]>(
      `SELECT count(*) FILTER (WHERE active) AS active, count(DISTINCT lower(username)) AS names
         FROM app_user`,
    );
    const admins = await this.dataSource.query<{ username: string; mfa: boolean }[]>(
      `SELECT username, mfa_enabled AS mfa FROM app_user WHERE active AND 'admin' = ANY(roles)`,
    );
    // $argon2id$v=19$m=65536,p=1,t=3$salt$hash: the algorithm, then its cost parameters.
    const hashes = await this.dataSource.query<
      { algorithm: string; parameters: string; n: string }[]
    >(
      `SELECT split_part(password_hash, '$', 2) AS algorithm,
              split_part(password_hash, '$', 4) AS parameters, count(*) AS n
         FROM app_user WHERE active GROUP BY 1, 2`,
    );
    const algorithms: Record<string, number> = {};
    for (const row of hashes) {
      algorithms[row.algorithm] = (algorithms[row.algorithm] ?? 0) + Number(row.n);
    }
    const [all] = await this.dataSource.query<{ n: string }[]>(
      `SELECT count(*) AS n FROM app_user`,
    );
    return {
      active: Number(counts!.active),
      distinctNames: Number(counts!.names) === Number(all!.n) ? Number(counts!.active) : -1,
      activeAdmins: admins.length,
      adminsWithoutMfa: admins.filter((admin) => !admin.mfa).map((admin) => admin.username),
      hashAlgorithms: algorithms,
      hashesBelowDefault: hashes
        .filter((row) => row.algorithm === 'argon2id' && belowPasswordHash(row.parameters))
        .reduce((sum, row) => sum + Number(row.n), 0),
    };
  }

  /**
   * Takes up to `limit` of the most recently written rows of every PHI column (by the table's
   * WRITTEN_AT column, then its primary key; by primary key alone in a table without one):
   * checks the stored value is an encryption envelope, and not the benchmark switch's
   * plaintext one, then decrypts each other value as a load through the entity would (the
   * subscriber, verifying its GCM tag against the row's AAD), one at a time, so that each
   * is counted for what it is. Counts only; no value leaves this method.
   */
  async samplePhi(limit: number): Promise<PhiSample[]> {
    const samples: PhiSample[] = [];
    for (const metadata of phiEntitiesOf(this.dataSource)) {
      for (const column of phiColumnsOf(metadata.target)) {
        const rows = await this.recentRows(metadata, column, limit);
        const sample: PhiSample = {
          table: metadata.tableName,
          column: databaseName(metadata, column),
          sampled: rows.length,
          notEnvelopes: 0,
          unencrypted: 0,
          undecryptable: 0,
        };
        for (const row of rows) {
          const value = row[column.property] as string;
          if (!ENVELOPE.test(value)) {
            sample.notEnvelopes++;
          } else if (value.startsWith(UNENCRYPTED)) {
            // No tag to verify: a cipher without the switch refuses it, one with it reads it.
            sample.unencrypted++;
            continue;
          }
          if (!this.decrypts(metadata, row)) sample.undecryptable++;
        }
        samples.push(sample);
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

  /**
   * The host and TLS settings node-postgres resolved for a pooled connection (the URL's
   * sslmode, uselibpqcompat, or PGSSLMODE), and what the server says of that same connection.
   */
  async databaseTransport(): Promise<DatabaseTransport> {
    const runner = this.dataSource.createQueryRunner();
    try {
      const client = (await runner.connect()) as Client;
      const [row] = (await runner.query(
        `SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()`,
      )) as { ssl: boolean; version: string | null }[];
      // Typed boolean, but it holds the TLS options when the URL or PGSSLMODE sets any.
      const ssl = client.ssl as boolean | ConnectionOptions;
      return {
        host: client.host,
        tlsVersion: row?.ssl ? (row.version ?? 'TLS') : undefined,
        verifiesServer:
          ssl === true || (typeof ssl === 'object' && ssl.rejectUnauthorized !== false),
      };
    } finally {
      await runner.release();
    }
  }

  async breakGlassGrants(days: number): Promise<number> {
    const [row] = await this.dataSource.query<{ n: string }[]>(
      `SELECT count(*) AS n FROM break_glass_grant WHERE created_at > now() - make_interval(days => $1)`,
      [days],
    );
    return Number(row!.n);
  }

  /**
   * The newest rows holding the column, as the entity names their properties: the value, and
   * what its ciphertext is bound to (the primary key and any bound column, such as a version).
   */
  private recentRows(
    metadata: EntityMetadata,
    column: PhiColumn,
    limit: number,
  ): Promise<ObjectLiteral[]> {
    const orderBy = recentFirst(metadata)
      .map((order) => `"${order.databaseName}" DESC`)
      .join(', ');
    const selected = [
      ...metadata.primaryColumns,
      ...[...column.bindTo, column.property].map((property) =>
        metadata.findColumnWithPropertyName(property)!,
      ),
    ];
    const name = databaseName(metadata, column);
    return this.dataSource.query<ObjectLiteral[]>(
      `SELECT ${selected.map((c) => `"${c.databaseName}" AS "${c.propertyName}"`).join(', ')}
         FROM "${metadata.tableName}" WHERE "${name}" IS NOT NULL ORDER BY ${orderBy} LIMIT $1`,
      [limit],
    );
  }

  private decrypts(metadata: EntityMetadata, row: ObjectLiteral): boolean {
    try {
      this.phi.decrypted(metadata.target, row);
      return true;
    } catch {
      return false;
    }
  }
}

function databaseName(metadata: EntityMetadata, column: PhiColumn): string {
  return metadata.findColumnWithPropertyName(column.property)?.databaseName ?? column.property;
}

/** The newest rows first: by when they were written, then by primary key (a stable order). */
function recentFirst(metadata: EntityMetadata): ColumnMetadata[] {
  const writtenAt = WRITTEN_AT.map((name) => metadata.findColumnWithPropertyName(name)).find(
    (column) => column !== undefined,
  );
  return [...(writtenAt ? [writtenAt] : []), ...metadata.primaryColumns];
}
