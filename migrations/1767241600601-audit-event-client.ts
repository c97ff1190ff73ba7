import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * AuditEvent search by SMART client (`agent=urn:carevault:client|<id>`): a row names its client
 * only inside actor_scope (`... client=<id>`, which the hash chain covers, so it stays as it is),
 * and without an index the search read the trail newest first until enough rows matched. The
 * index holds the client id taken out of the scope, for the rows whose scope names one, and
 * ends with `chain_seq`, the order results come in. AuditRepository.clientCondition is the
 * same expression and predicate.
 */
export class AuditEventClient1767241600601 implements MigrationInterface {
  name = 'AuditEventClient1767241600601';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(
      `CREATE INDEX "idx_audit_event_client" ON "audit_event"
         ((substring("actor_scope" from '(?:^| )client=(\\S+)')), "chain_seq")
         WHERE "actor_scope" LIKE '%client=%'`,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP INDEX "idx_audit_event_client"`);
  }
}
