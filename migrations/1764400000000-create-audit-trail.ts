import type { MigrationInterface, QueryRunner } from 'typeorm';

const GENESIS = '0'.repeat(64);
/** The advisory lock that serializes chain appends ('cvAU'). */
const CHAIN_LOCK = 0x63764155;

/**
 * The body that links entries onto the chain: takes the chain lock (held to the end of the
 * transaction), links each entry of `entries` (a jsonb array expression) to the one before,
 * inserts them and moves the head. The application sends each entry with the SHA-256 of its
 * canonical form (content_hash); the link is SHA-256(previous hash || content hash ||
 * position), as linkHash() computes. Declares and sets "seq" to the new head's position.
 */
export function linkEntries(entries: string): { declare: string; body: string } {
  return {
    declare: `
        "entry" jsonb;
        "seq" bigint;
        "head" text;
        "previous" text;`,
    body: `
        PERFORM pg_advisory_xact_lock(${CHAIN_LOCK});
        SELECT h."chain_seq", h."hash" INTO "seq", "head"
          FROM "audit_chain_head" h WHERE h."id" = 1 FOR UPDATE;
        FOR "entry" IN SELECT value FROM jsonb_array_elements(${entries}) LOOP
          "seq" := "seq" + 1;
          "previous" := "head";
          "head" := encode(sha256(decode("previous", 'hex')
            || decode("entry"->>'content_hash', 'hex')
            || convert_to("seq"::text, 'UTF8')), 'hex');
          INSERT INTO "audit_event"
            SELECT * FROM jsonb_populate_record(NULL::"audit_event", "entry"
              || jsonb_build_object('chain_seq', "seq", 'prev_hash', "previous", 'hash', "head"));
        END LOOP;
        UPDATE "audit_chain_head" SET "chain_seq" = "seq", "hash" = "head" WHERE "id" = 1;`,
  };
}

const LINK = linkEntries('"entries"');

/**
 * Extends the chain in one statement, where it is called. (Migration 1764800000000 moves the
 * linking to commit time; its down() restores this.)
 */
export const AUDIT_APPEND = `
      CREATE FUNCTION "audit_append"("entries" jsonb) RETURNS bigint LANGUAGE plpgsql AS $$
      DECLARE${LINK.declare}
      BEGIN${LINK.body}
        RETURN "seq";
      END $$`;

/**
 * The audit trail: one hash-chained row per audited event, a one-row chain head that writers
 * lock, and signed checkpoints. Rows and checkpoints are append-only: triggers reject UPDATE,
 * DELETE and TRUNCATE for every role (a superuser can still disable triggers, which is what
 * the hash chain and the checkpoints outside the database are for).
 */
export class CreateAuditTrail1764400000000 implements MigrationInterface {
  name = 'CreateAuditTrail1764400000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`
      CREATE TABLE "audit_event" (
        "chain_seq" bigint NOT NULL,
        "id" uuid NOT NULL,
        "recorded_at" timestamptz NOT NULL,
        "source" text NOT NULL,
        "request_id" text,
        "actor_user_id" text,
        "actor_name" text,
        "actor_roles" text[] NOT NULL DEFAULT '{}',
        "actor_scope" text,
        "break_glass" boolean NOT NULL DEFAULT false,
        "source_ip" text,
        "user_agent" text,
        "action" text NOT NULL,
        "subtype" text,
        "method" text,
        "route" text,
        "resource_type" text,
        "resource_id" text,
        "resource_version" text,
        "patient_ids" text[] NOT NULL DEFAULT '{}',
        "entities" text[] NOT NULL DEFAULT '{}',
        "query_params" text[] NOT NULL DEFAULT '{}',
        "outcome" text NOT NULL,
        "status_code" integer,
        "detail" text,
        "prev_hash" char(64) NOT NULL,
        "hash" char(64) NOT NULL,
        CONSTRAINT "pk_audit_event" PRIMARY KEY ("chain_seq"),
        CONSTRAINT "uq_audit_event_id" UNIQUE ("id"),
        CONSTRAINT "chk_audit_event_outcome" CHECK ("outcome" IN ('success', 'failure'))
      )`);
    await queryRunner.query(
      `CREATE INDEX "idx_audit_event_patients" ON "audit_event" USING gin ("patient_ids")`,
    );
    await queryRunner.query(
      `CREATE INDEX "idx_audit_event_entities" ON "audit_event" USING gin ("entities")`,
    );
    await queryRunner.query(
      `CREATE INDEX "idx_audit_event_recorded_at" ON "audit_event" ("recorded_at")`,
    );
    await queryRunner.query(
      `CREATE INDEX "idx_audit_event_actor" ON "audit_event" ("actor_user_id", "chain_seq")`,
    );
    await queryRunner.query(`
      CREATE TABLE "audit_chain_head" (
        "id" smallint NOT NULL,
        "chain_id" uuid NOT NULL,
        "chain_seq" bigint NOT NULL,
        "hash" char(64) NOT NULL,
        CONSTRAINT "pk_audit_chain_head" PRIMARY KEY ("id"),
        CONSTRAINT "chk_audit_chain_head_single" CHECK ("id" = 1)
      )`);
    await queryRunner.query(
      // The chain's identity: checkpoints name it, so that a checkpoint file shared by mistake
      // between databases cannot vouch for the wrong chain.
      `INSERT INTO "audit_chain_head" ("id", "chain_id", "chain_seq", "hash")
       VALUES (1, gen_random_uuid(), 0, '${GENESIS}')`,
    );
    await queryRunner.query(`
      CREATE TABLE "audit_checkpoint" (
        "chain_id" uuid NOT NULL,
        "chain_seq" bigint NOT NULL,
        "hash" char(64) NOT NULL,
        "created_at" timestamptz NOT NULL,
        "key_id" text NOT NULL,
        "signature" text NOT NULL,
        CONSTRAINT "pk_audit_checkpoint" PRIMARY KEY ("chain_seq", "created_at")
      )`);
    await queryRunner.query(`
      CREATE TABLE "audit_archive" (
        "chain_id" uuid NOT NULL,
        "through_seq" bigint NOT NULL,
        "hash" char(64) NOT NULL,
        "archived_at" timestamptz NOT NULL,
        "key_id" text NOT NULL,
        "signature" text NOT NULL,
        CONSTRAINT "pk_audit_archive" PRIMARY KEY ("through_seq")
      )`);
    // The one sanctioned removal is audit:archive: it first exports the rows, then records a
    // signed archive boundary, and may then delete rows up to that boundary and no further.
    // A forged boundary fails verification, since only the audit signing key can sign one.
    await queryRunner.query(`
      CREATE FUNCTION "audit_reject_change"() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF TG_OP = 'DELETE' AND TG_TABLE_NAME = 'audit_event' AND OLD."chain_seq" <=
           (SELECT coalesce(max("through_seq"), 0) FROM "audit_archive") THEN
          RETURN OLD;
        END IF;
        RAISE EXCEPTION 'the audit trail is append-only: % on % is not allowed', TG_OP, TG_TABLE_NAME
          USING ERRCODE = 'insufficient_privilege';
      END $$`);
    await queryRunner.query(AUDIT_APPEND);
    for (const table of ['audit_event', 'audit_checkpoint', 'audit_archive']) {
      await queryRunner.query(
        `CREATE TRIGGER "trg_${table}_no_change" BEFORE UPDATE OR DELETE ON "${table}"
         FOR EACH ROW EXECUTE FUNCTION "audit_reject_change"()`,
      );
      await queryRunner.query(
        `CREATE TRIGGER "trg_${table}_no_truncate" BEFORE TRUNCATE ON "${table}"
         FOR EACH STATEMENT EXECUTE FUNCTION "audit_reject_change"()`,
      );
    }
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP FUNCTION "audit_append"(jsonb)`);
    await queryRunner.query(`DROP TABLE "audit_archive"`);
    await queryRunner.query(`DROP TABLE "audit_checkpoint"`);
    await queryRunner.query(`DROP TABLE "audit_chain_head"`);
    await queryRunner.query(`DROP TABLE "audit_event"`);
    await queryRunner.query(`DROP FUNCTION "audit_reject_change"()`);
  }
}
