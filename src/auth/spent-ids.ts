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
 * How many expired ids a spend removes on the way: more than it adds (one), so a table never
 * grows past its unexpired ids by much, and few enough that a spend stays a short statement.
 */
const PURGE_BATCH = 100;

/**
 * Records `jti` of `owner` as spent until `expiresAt`; false when it already was. One statement,
 * so two requests racing with the same id cannot both win, and in PostgreSQL, so that it holds
 * across instances. Expired ids of any owner are dropped on the way (an expired token or
 * assertion is refused by its `exp` anyway): dropping only the owner's left the rows of a user
 * or client never seen again for ever. At most PURGE_BATCH of them, found by the `expires_at`
 * index, and rows another spend is deleting are skipped rather than waited for.
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
       DELETE FROM ${table} WHERE ctid = ANY (ARRAY(
         SELECT ctid FROM ${table} WHERE expires_at < now()
          LIMIT ${PURGE_BATCH} FOR UPDATE SKIP LOCKED))
     )
     INSERT INTO ${table} (${column}, jti, expires_at) VALUES ($1, $2, $3)
     ON CONFLICT DO NOTHING RETURNING jti`,
    [owner, jti, expiresAt],
  );
  return rows.length === 1;
}
