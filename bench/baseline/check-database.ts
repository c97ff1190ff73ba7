import pg from 'pg';
import { createDataSource } from '../../src/database/database-options.js';
import { EmbeddedPostgres } from '../../src/database/embedded-postgres.js';
import { INDEX_TABLES } from '../../src/fhir/search/search-index.repository.js';

/** What check.ts reads from the PostgreSQL server both services share. */

export function databaseUrl(serverUrl: string, database: string): string {
  const url = new URL(serverUrl);
  url.pathname = `/${database}`;
  return url.toString();
}

async function withClient<T>(url: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/**
 * An embedded PostgreSQL in `dir` with pg_stat_statements loaded (which takes a restart), and
 * a `baseline` database beside CareVault's, both migrated. Returns CareVault's database URL.
 */
export async function startServer(
  dir: string,
): Promise<{ carevault: string; baseline: string; admin: string; stop(): Promise<void> }> {
  const first = new EmbeddedPostgres(dir);
  const admin = databaseUrl(await first.start(), 'postgres');
  await withClient(admin, (client) =>
    client.query(`ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'`),
  );
  await first.stop();
  const server = new EmbeddedPostgres(dir);
  const carevault = await server.start();
  const restarted = databaseUrl(carevault, 'postgres');
  const baseline = databaseUrl(carevault, 'baseline');
  await withClient(restarted, async (client) => {
    await client.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
    await client.query('CREATE DATABASE baseline');
  });
  for (const url of [carevault, baseline]) {
    const dataSource = await createDataSource(url).initialize();
    await dataSource.runMigrations({ transaction: 'each' });
    await dataSource.destroy();
  }
  return { carevault, baseline, admin: restarted, stop: () => server.stop() };
}

export interface Statement {
  query: string;
  calls: number;
}

/** Top-level statements run in a database so far, by pg_stat_statements' query id. */
export async function statementCalls(
  admin: pg.Client,
  database: string,
): Promise<Map<string, Statement>> {
  const { rows } = await admin.query<{ id: string; query: string; calls: number }>(
    `SELECT s.queryid::text AS id, s.query, s.calls::int AS calls
       FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
      WHERE d.datname = $1 AND s.toplevel`,
    [database],
  );
  return new Map(
    rows.map((row) => [row.id, { query: row.query.replace(/\s+/g, ' ').trim(), calls: row.calls }]),
  );
}

/**
 * The statements run between two snapshots, sorted by text, but for CareVault's reading of the
 * database's clock (DatabaseClock), which it sends every 2 s whatever it serves.
 */
export function statementsBetween(
  before: Map<string, Statement>,
  after: Map<string, Statement>,
): Statement[] {
  return [...after.entries()]
    .map(([id, { query, calls }]) => ({ query, calls: calls - (before.get(id)?.calls ?? 0) }))
    .filter((statement) => statement.calls > 0 && !statement.query.includes('clock_timestamp()'))
    .sort((a, b) => a.query.localeCompare(b.query));
}

/** Rows in every table of the schema. */
export async function rowCounts(client: pg.Client): Promise<Map<string, number>> {
  const { rows: tables } = await client.query<{ name: string }>(
    `SELECT table_name AS name FROM information_schema.tables
      WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY table_name`,
  );
  const { rows } = await client.query<{ name: string; n: number }>(
    tables
      .map(({ name }) => `SELECT '${name}' AS name, count(*)::int AS n FROM "${name}"`)
      .join(' UNION ALL '),
  );
  return new Map(rows.map((row) => [row.name, row.n]));
}

/** The columns of the version tables compared: not last_updated (a time of each side's own). */
const VERSION_COLUMNS: Record<string, string> = {
  resource: 'resource_type, id, version_id, deleted, length(content) AS content_length',
  resource_history:
    'resource_type, id, version_id, deleted, length(content) AS content_length, method',
  resource_history_patient: 'patient_id, resource_type, id, version_id',
};

/**
 * The rows of some resources, by table, as sorted JSON lines with their ids replaced by names
 * (`ids`: id to name), so two databases' rows for the same bodies compare equal. Encrypted
 * content is compared by length only: its IVs are random.
 */
export async function rowsOf(
  client: pg.Client,
  ids: ReadonlyMap<string, string>,
): Promise<Map<string, string[]>> {
  const named = (value: unknown): unknown =>
    typeof value === 'string' ? (ids.get(value) ?? value) : value;
  const keys = [...ids.keys()];
  const result = new Map<string, string[]>();
  for (const [table, columns] of Object.entries(VERSION_COLUMNS)) {
    const { rows } = await client.query<Record<string, unknown>>(
      `SELECT ${columns} FROM "${table}" WHERE id = ANY($1)`,
      [keys],
    );
    result.set(table, rows.map((row) => JSON.stringify(Object.values(row).map(named))).sort());
  }
  for (const table of INDEX_TABLES) {
    const { rows } = await client.query<Record<string, unknown>>(
      `SELECT * FROM "${table}" WHERE resource_id = ANY($1)`,
      [keys],
    );
    result.set(table, rows.map((row) => JSON.stringify(Object.values(row).map(named))).sort());
  }
  return result;
}

const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g;

/**
 * The newest audit row, without what differs between any two requests (its id, time, chain
 * links, request id, user) and with resource ids as ID: what the two services should agree on.
 */
export async function lastAuditRow(client: pg.Client): Promise<string> {
  const { rows } = await client.query<Record<string, unknown>>(
    `SELECT source, length(actor_name) AS actor_name_length, actor_roles, actor_scope, break_glass,
            source_ip, user_agent, action, subtype, method, route, resource_type, resource_id,
            resource_version, patient_ids, entities, query_params, outcome, status_code, detail
       FROM audit_event ORDER BY chain_seq DESC LIMIT 1`,
  );
  return JSON.stringify(rows[0] ?? null).replace(UUID, 'ID');
}

/** Copies a resource's rows (current and history) to another database, still encrypted. */
export async function copyResource(
  from: pg.Client,
  to: pg.Client,
  resourceType: string,
  id: string,
): Promise<void> {
  for (const table of ['resource', 'resource_history']) {
    const { rows } = await from.query<Record<string, unknown>>(
      `SELECT resource_type, id, version_id, last_updated, deleted, content FROM "${table}"
        WHERE resource_type = $1 AND id = $2`,
      [resourceType, id],
    );
    if (rows.length === 0) throw new Error(`${resourceType}/${id} is not in the source database`);
    for (const row of rows) {
      await to.query(
        `INSERT INTO "${table}" (resource_type, id, version_id, last_updated, deleted, content)
         VALUES ($1, $2, $3, $4, $5, $6)`,
        Object.values(row),
      );
    }
  }
}
