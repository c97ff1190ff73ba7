import type { MigrationInterface, QueryRunner } from 'typeorm';

const LINE = `cv1\\.k[0-9a-f]{12}\\.[A-Za-z0-9_-]{16}\\.[A-Za-z0-9_-]*\\.[A-Za-z0-9_-]{22}`;

/**
 * Bulk Data export jobs and their files live in PostgreSQL, no longer in the memory and DATA_DIR
 * of the instance that ran them: any instance answers a status poll or a download, and a job
 * whose instance stopped is reported as interrupted instead of vanishing (404).
 *
 * A file is a series of chunks, each a run of NDJSON lines encrypted one by one under the PHI
 * key (a CHECK refuses anything else) with the patients whose data the chunk holds, which a
 * download's audit row names. At most one job per user runs at a time, across instances.
 */
export class CreateExportJobs1765000000000 implements MigrationInterface {
  name = 'CreateExportJobs1765000000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`
      CREATE TABLE "export_job" (
        "id" uuid NOT NULL,
        "user_id" uuid NOT NULL,
        "level" text NOT NULL,
        "status" text NOT NULL,
        "progress" text NOT NULL,
        "failure" text,
        "transaction_time" timestamptz NOT NULL,
        "request_url" text NOT NULL,
        "base_url" text NOT NULL,
        "files" jsonb NOT NULL DEFAULT '[]',
        "heartbeat_at" timestamptz NOT NULL,
        "expires_at" timestamptz,
        CONSTRAINT "pk_export_job" PRIMARY KEY ("id"),
        CONSTRAINT "chk_export_job_status" CHECK ("status" IN ('in-progress', 'completed', 'failed'))
      )`);
    await queryRunner.query(
      `CREATE UNIQUE INDEX "uq_export_job_running" ON "export_job" ("user_id")
         WHERE "status" = 'in-progress'`,
    );
    await queryRunner.query(`
      CREATE TABLE "export_chunk" (
        "job_id" uuid NOT NULL,
        "file" text NOT NULL,
        "first_line" integer NOT NULL,
        "lines" text NOT NULL,
        "patients" text[] NOT NULL,
        CONSTRAINT "pk_export_chunk" PRIMARY KEY ("job_id", "file", "first_line"),
        CONSTRAINT "fk_export_chunk_job" FOREIGN KEY ("job_id")
          REFERENCES "export_job" ("id") ON DELETE CASCADE,
        CONSTRAINT "chk_export_chunk_encrypted" CHECK ("lines" ~ '^${LINE}(\\n${LINE})*$')
      )`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP TABLE "export_chunk"`);
    await queryRunner.query(`DROP TABLE "export_job"`);
  }
}
