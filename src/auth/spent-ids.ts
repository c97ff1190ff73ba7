import type { EntityManager } from 'typeorm';

/** The tables of ids that work once, each row an owner's id kept until it expires. */
const SPENT_TABLES = {
  /** A backend client's assertions (`jti`), by client. */
  backend_client_assertion: 'client_id',
  /** MFA tokens exchanged for a session (`jti`), by user. */
  spent_mfa_token: 'user_id',
} as const;

export type SpentTable = keyof typeof SPENT_TABLES;

/**
 * Records `jti` of `owner` as spent until `expiresAt`; false when it already was. One statement,
 * so two requests racing with the same id cannot both win, and in PostgreSQL, so that it holds
 * across instances. The owner's spent ids that have expired are dropped on the way (an expired
 * token or assertion is refused by its `exp` anyway).
 */
export async function spendOnce(
  db: Pick<EntityManager, 'query'>,
  table: SpentTable,
  owner: string,
  jti: string,
  expiresAt: Date,
): Promise<boolean> {
  const column = SPENT_TABLES[table];
  const rows = await db.query<unknown[]>(
    `WITH expired AS (
       DELETE FROM ${table} WHERE ${column} = $1 AND expires_at < now()
     )
     INSERT INTO ${table} (${column}, jti, expires_at) VALUES ($1, $2, $3)
     ON CONFLICT DO NOTHING RETURNING jti`,
    [owner, jti, expiresAt],
  );
  return rows.length === 1;
}
