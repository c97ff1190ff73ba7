import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { DataSource, EntityManager } from 'typeorm';

/** A file of a finished job, as its manifest lists it. */
export interface ExportFileRow {
  type: string;
  /** The file's name within the job and in its URL. */
  name: string;
  count: number;
}

export interface ExportJobRow {
  id: string;
  userId: string;
  /** The SMART client the token was issued to, null for the user's own (ExportOwner). */
  clientId: string | null;
  /** The token's SMART resource scopes (exportScopeOf), null without scopes. */
  scope: string | null;
  /** The token's patient in context. */
  patient: string | null;
  /** The account's session epoch when the job started (ExportOwner). */
  sessionEpoch: number;
  level: string;
  status: 'in-progress' | 'completed' | 'failed';
  progress: string;
  failure: string | null;
  transactionTime: Date;
  requestUrl: string;
  baseUrl: string;
  files: ExportFileRow[];
  /** True when the job is in progress but its instance has not been heard from in time. */
  stale: boolean;
  expired: boolean;
  /** When a completed job's files are removed (its retention), null before completion. */
  expiresAt: Date | null;
}

export interface ExportChunk {
  firstLine: number;
  /** Encrypted NDJSON lines. */
  lines: string[];
}

/** A running job not heard from for $2 seconds. */
const STALE = 'heartbeat_at < now() - make_interval(secs => $2)';

const JOB_COLUMNS = `id, user_id AS "userId", client_id AS "clientId", scope, patient, session_epoch AS "sessionEpoch",
  level, status, progress, failure,
  transaction_time AS "transactionTime", request_url AS "requestUrl", base_url AS "baseUrl",
  files, (status = 'in-progress' AND ${STALE}) AS stale,
  (expires_at IS NOT NULL AND expires_at <= now()) AS expired, expires_at AS "expiresAt"`;

/** SQL of Bulk Data export jobs and their encrypted files (migrations 1765000000000 on). */
@Injectable()
export class ExportRepository {
  constructor(@InjectDataSource() private readonly dataSource: DataSource) {}

  /**
   * A new running job, unless the user has one running: false then. A running job whose
   * instance stopped answering is marked failed first, so it does not block its owner forever;
   * so is one of an earlier session epoch: no token of the account can see or cancel it any
   * more (ExportOwner), and it held every new export of the account to a 429 until it ended.
   */
  async insert(
    job: {
      id: string;
      userId: string;
      clientId: string | null;
      scope: string | null;
      patient: string | null;
      sessionEpoch: number;
      level: string;
      transactionTime: Date;
      requestUrl: string;
      baseUrl: string;
    },
    staleSeconds: number,
  ): Promise<boolean> {
    return this.dataSource.transaction(async (manager) => {
      await failRunning(
        manager,
        `user_id = $1 AND ${STALE}`,
        [job.userId, staleSeconds],
        INTERRUPTED,
      );
      await failRunning(
        manager,
        'user_id = $1 AND session_epoch < $2',
        [job.userId, job.sessionEpoch],
        SESSIONS_ENDED,
      );
      const rows = await manager.query<unknown[]>(
        `INSERT INTO export_job (id, user_id, scope, patient, session_epoch, level, status,
                                 progress, transaction_time, request_url, base_url, heartbeat_at,
                                 client_id)
         VALUES ($1, $2, $3, $4, $9, $5, 'in-progress', 'starting', $6, $7, $8, now(), $10)
         ON CONFLICT (user_id) WHERE status = 'in-progress' DO NOTHING
         RETURNING id`,
        [
          job.id,
          job.userId,
          job.scope,
          job.patient,
          job.level,
          job.transactionTime,
          job.requestUrl,
          job.baseUrl,
          job.sessionEpoch,
          job.clientId,
        ],
      );
      return rows.length === 1;
    });
  }

  async find(id: string, staleSeconds: number): Promise<ExportJobRow | undefined> {
    const rows = await this.dataSource.query<ExportJobRow[]>(
      `SELECT ${JOB_COLUMNS} FROM export_job WHERE id = $1`,
      [id, staleSeconds],
    );
    return rows[0];
  }

  /**
   * Records progress and that the running instance is alive. False when the job is no longer
   * running here: cancelled (deleted), or given up as interrupted by another instance.
   */
  async heartbeat(id: string, progress: string): Promise<boolean> {
    const changed = await this.changed(
      `UPDATE export_job SET progress = $2, heartbeat_at = now()
        WHERE id = $1 AND status = 'in-progress'`,
      [id, progress],
    );
    return changed === 1;
  }

  async complete(id: string, files: ExportFileRow[], retentionSeconds: number): Promise<boolean> {
    const changed = await this.changed(
      `UPDATE export_job
          SET status = 'completed', progress = 'completed', files = $2::jsonb,
              heartbeat_at = now(), expires_at = now() + make_interval(secs => $3)
        WHERE id = $1 AND status = 'in-progress'`,
      [id, JSON.stringify(files), retentionSeconds],
    );
    return changed === 1;
  }

  /** Marks a running job failed and drops what it had written; `failure` is shown to its owner. */
  async fail(id: string, failure: string): Promise<void> {
    await this.dataSource.transaction((manager) => failRunning(manager, 'id = $1', [id], failure));
  }

  /**
   * Marks a running job failed, its lines dropped, when its account has been disabled or its
   * session epoch moved on since the job started, or the client that started it (a backend
   * client, an app) has been disabled: no token can open the job then; true if this call did.
   * An identity provider's account has no row here and is never stopped so (the provider
   * disables it).
   */
  async failIfSessionsEnded(id: string): Promise<boolean> {
    const failed = await this.dataSource.transaction((manager) =>
      failRunning(
        manager,
        `id = $1 AND (
           EXISTS (SELECT 1 FROM app_user
                    WHERE app_user.id::text = export_job.user_id
                      AND (NOT app_user.active
                           OR app_user.session_epoch <> export_job.session_epoch))
           OR EXISTS (SELECT 1 FROM backend_client
                       WHERE backend_client.id::text = export_job.client_id
                         AND NOT backend_client.active)
           OR EXISTS (SELECT 1 FROM smart_app
                       WHERE smart_app.id::text = export_job.client_id AND NOT smart_app.active))`,
        [id],
        SESSIONS_ENDED,
      ),
    );
    return failed === 1;
  }

  /** Marks a running job whose instance stopped answering as failed; true if this call did. */
  async failIfStale(id: string, staleSeconds: number): Promise<boolean> {
    const failed = await this.dataSource.transaction((manager) =>
      failRunning(manager, `id = $1 AND ${STALE}`, [id, staleSeconds], INTERRUPTED),
    );
    return failed === 1;
  }

  /** Removes a job and its files (chunks go with it). */
  async delete(id: string): Promise<void> {
    await this.dataSource.query('DELETE FROM export_job WHERE id = $1', [id]);
  }

  /**
   * Stores a chunk of a running job; false when the job is no longer running (cancelled, or
   * failed meanwhile). FOR SHARE waits for a concurrent fail() and then sees its outcome.
   */
  async appendChunk(
    jobId: string,
    file: string,
    chunk: ExportChunk,
    patients: readonly string[],
  ): Promise<boolean> {
    const rows = await this.dataSource.query<unknown[]>(
      `INSERT INTO export_chunk (job_id, file, first_line, lines, patients)
       SELECT id, $2, $3, $4, $5::text[] FROM export_job
        WHERE id = $1 AND status = 'in-progress' FOR SHARE
       RETURNING first_line`,
      [jobId, file, chunk.firstLine, chunk.lines.join('\n'), patients],
    );
    return rows.length === 1;
  }

  /** The chunk of a file that follows line `after` (0 for the first), if any. */
  async chunkAfter(jobId: string, file: string, after: number): Promise<ExportChunk | undefined> {
    const rows = await this.dataSource.query<{ firstLine: number; lines: string }[]>(
      `SELECT first_line AS "firstLine", lines FROM export_chunk
        WHERE job_id = $1 AND file = $2 AND first_line > $3
        ORDER BY first_line LIMIT 1`,
      [jobId, file, after],
    );
    const row = rows[0];
    return row ? { firstLine: row.firstLine, lines: row.lines.split('\n') } : undefined;
  }

  /** The PHI key ids a file's lines are encrypted under (each line's envelope names one). */
  async keyIdsOf(jobId: string, file: string): Promise<string[]> {
    const rows = await this.dataSource.query<{ keyId: string }[]>(
      `SELECT DISTINCT split_part(line, '.', 2) AS "keyId"
         FROM export_chunk, unnest(string_to_array(lines, E'\\n')) AS line
        WHERE job_id = $1 AND file = $2`,
      [jobId, file],
    );
    return rows.map((row) => row.keyId);
  }

  /** Every patient whose data a file holds. */
  async patientsOf(jobId: string, file: string): Promise<string[]> {
    const rows = await this.dataSource.query<{ patient: string }[]>(
      `SELECT DISTINCT unnest(patients) AS patient FROM export_chunk
        WHERE job_id = $1 AND file = $2 ORDER BY 1`,
      [jobId, file],
    );
    return rows.map((row) => row.patient);
  }

  /**
   * Removes jobs past their retention, and failed or abandoned ones once they are that old:
   * whichever instance gets there first.
   */
  async sweep(retentionSeconds: number): Promise<number> {
    return this.changed(
      `DELETE FROM export_job
        WHERE expires_at <= now()
           OR (status <> 'completed' AND heartbeat_at < now() - make_interval(secs => $1))`,
      [retentionSeconds],
    );
  }

  /** Rows an UPDATE or DELETE changed (TypeORM answers those with [rows, count]). */
  private async changed(sql: string, parameters: unknown[]): Promise<number> {
    const result = await this.dataSource.query<[unknown[], number]>(sql, parameters);
    return result[1];
  }
}

/**
 * Marks the running jobs matching `match` failed and drops what they had written; how many.
 * The status changes first: a chunk being stored meanwhile waits for it and then finds the job
 * no longer running (appendChunk), so nothing is left behind. export_chunk is only touched
 * when a job did fail, so starting a job never waits on it.
 */
async function failRunning(
  manager: EntityManager,
  match: string,
  parameters: unknown[],
  failure: string,
): Promise<number> {
  const [failed] = await manager.query<[{ id: string }[], number]>(
    `UPDATE export_job SET status = 'failed', failure = $${parameters.length + 1}, heartbeat_at = now()
      WHERE ${match} AND status = 'in-progress'
      RETURNING id`,
    [...parameters, failure],
  );
  if (failed.length > 0) {
    await manager.query('DELETE FROM export_chunk WHERE job_id = ANY($1::uuid[])', [
      failed.map((row) => row.id),
    ]);
  }
  return failed.length;
}

/** Shown to no token (the job's epoch is over), but kept as the reason the job stopped. */
const SESSIONS_ENDED = "The export was stopped: the account's sessions ended. Start a new one";

export const INTERRUPTED =
  'The export was interrupted: the service instance running it stopped. Start a new one';
