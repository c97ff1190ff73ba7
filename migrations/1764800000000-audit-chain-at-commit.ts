import type { MigrationInterface, QueryRunner } from 'typeorm';
import { AUDIT_APPEND, linkEntries } from './1764400000000-create-audit-trail.js';

/** The same linking as audit_append() did, over the queued row's entries. */
const LINK = linkEntries('NEW."entries"');

/**
 * Links audit rows onto the chain at commit time instead of where audit_append() is called.
 *
 * The chain lock is held until the transaction ends. A FHIR write appends its audit row in its
 * own transaction, just before COMMIT, so the lock used to be held across a round trip to the
 * service and back: the COMMIT waits until the service's event loop gets to send it, and every
 * other write and audited read waits behind. Under load that was the writes' bottleneck.
 *
 * Now audit_append() only inserts the entries into audit_pending. A deferred constraint trigger
 * links them at COMMIT, inside PostgreSQL: the lock is held from there to the end of the
 * commit, with no round trip inside. The rows, hashes and order of audit_event are the same as
 * before; a transaction that rolls back leaves nothing, as before. audit_pending is empty
 * outside a transaction in flight: the trigger removes what it links.
 */
export class AuditChainAtCommit1764800000000 implements MigrationInterface {
  name = 'AuditChainAtCommit1764800000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`
      CREATE TABLE "audit_pending" (
        "id" bigserial NOT NULL,
        "entries" jsonb NOT NULL,
        CONSTRAINT "pk_audit_pending" PRIMARY KEY ("id")
      )`);
    await queryRunner.query(`
      CREATE FUNCTION "audit_link_pending"() RETURNS trigger LANGUAGE plpgsql AS $$
      DECLARE${LINK.declare}
      BEGIN${LINK.body}
        DELETE FROM "audit_pending" WHERE "id" = NEW."id";
        RETURN NULL;
      END $$`);
    await queryRunner.query(`
      CREATE CONSTRAINT TRIGGER "trg_audit_pending_link" AFTER INSERT ON "audit_pending"
        DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION "audit_link_pending"()`);
    await queryRunner.query(`DROP FUNCTION "audit_append"(jsonb)`);
    await queryRunner.query(`
      CREATE FUNCTION "audit_append"("entries" jsonb) RETURNS void LANGUAGE sql AS $$
        INSERT INTO "audit_pending" ("entries") VALUES ("entries")
      $$`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP FUNCTION "audit_append"(jsonb)`);
    await queryRunner.query(AUDIT_APPEND);
    await queryRunner.query(`DROP TABLE "audit_pending"`);
    await queryRunner.query(`DROP FUNCTION "audit_link_pending"()`);
  }
}
