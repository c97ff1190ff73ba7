import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import { spendOnce } from '../spent-ids.js';
import type { ClientKeySet } from './client-keys.js';

/** A registered SMART backend client. Names and keys are not PHI. */
export interface BackendClient {
  id: string;
  name: string;
  userId: string;
  /** Its public keys as registered, or null when it publishes them at `jwksUrl`. */
  jwks: ClientKeySet | null;
  jwksUrl: string | null;
  /** The widest scope it may be granted, space-separated `system/` scopes. */
  scope: string;
  active: boolean;
  createdAt: Date;
}

interface Row {
  id: string;
  name: string;
  user_id: string;
  jwks: ClientKeySet | null;
  jwks_url: string | null;
  scope: string;
  active: boolean;
  created_at: Date;
}

const COLUMNS = 'id, name, user_id, jwks, jwks_url, scope, active, created_at';

const toClient = (row: Row): BackendClient => ({
  id: row.id,
  name: row.name,
  userId: row.user_id,
  jwks: row.jwks,
  jwksUrl: row.jwks_url,
  scope: row.scope,
  active: row.active,
  createdAt: row.created_at,
});

/** All SQL for backend clients and the assertions they have spent. */
@Injectable()
export class BackendClientRepository {
  constructor(@InjectDataSource() private readonly dataSource: DataSource) {}

  async insert(client: BackendClient): Promise<void> {
    await this.dataSource.query(
      `INSERT INTO backend_client (${COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
      [
        client.id,
        client.name,
        client.userId,
        client.jwks ? JSON.stringify(client.jwks) : null,
        client.jwksUrl,
        client.scope,
        client.active,
        client.createdAt,
      ],
    );
  }

  async findById(id: string): Promise<BackendClient | undefined> {
    const rows = await this.dataSource.query<Row[]>(
      `SELECT ${COLUMNS} FROM backend_client WHERE id = $1`,
      [id],
    );
    return rows[0] && toClient(rows[0]);
  }

  async findByName(name: string): Promise<BackendClient | undefined> {
    const rows = await this.dataSource.query<Row[]>(
      `SELECT ${COLUMNS} FROM backend_client WHERE name = $1`,
      [name],
    );
    return rows[0] && toClient(rows[0]);
  }

  /** Whether the client exists and is active: read for its access tokens (ClientStatus). */
  async isActive(id: string): Promise<boolean> {
    const rows = await this.dataSource.query<{ active: boolean }[]>(
      `SELECT active FROM backend_client WHERE id = $1`,
      [id],
    );
    return rows[0]?.active === true;
  }

  async list(): Promise<BackendClient[]> {
    const rows = await this.dataSource.query<Row[]>(
      `SELECT ${COLUMNS} FROM backend_client ORDER BY name`,
    );
    return rows.map(toClient);
  }

  async setActive(id: string, active: boolean): Promise<void> {
    await this.dataSource.query(`UPDATE backend_client SET active = $2 WHERE id = $1`, [
      id,
      active,
    ]);
  }

  /** Replaces the keys: a JWKS, or the URL where the client publishes one. */
  async setKeys(id: string, keys: Pick<BackendClient, 'jwks' | 'jwksUrl'>): Promise<void> {
    await this.dataSource.query(
      `UPDATE backend_client SET jwks = $2::jsonb, jwks_url = $3 WHERE id = $1`,
      [id, keys.jwks ? JSON.stringify(keys.jwks) : null, keys.jwksUrl],
    );
  }

  /** Records an assertion's `jti` as spent until it expires; false when it already was. */
  spendAssertion(clientId: string, jti: string, expiresAt: Date): Promise<boolean> {
    return spendOnce(this.dataSource, 'backend_client_assertion', clientId, jti, expiresAt);
  }
}
