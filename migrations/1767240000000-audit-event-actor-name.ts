import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * AuditEvent search by username (agent-name): without an index the trail was read newest first
 * until enough rows matched, so a name with few rows, or none (the investigator's typo), read
 * every row. One index per form the search takes: `:exact` compares the name as written, and
 * the default matches its start in any case, which only `text_pattern_ops` serves for every
 * collation. Both end with `chain_seq`, the order results come in.
 */
export class AuditEventActorName1767240000000 implements MigrationInterface {
  name = 'AuditEventActorName1767240000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(
      `CREATE INDEX "idx_audit_event_actor_name" ON "audit_event" ("actor_name", "chain_seq")`,
    );
    await queryRunner.query(
      `CREATE INDEX "idx_audit_event_actor_name_lower"
         ON "audit_event" (lower("actor_name") text_pattern_ops, "chain_seq")`,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP INDEX "idx_audit_event_actor_name_lower"`);
    await queryRunner.query(`DROP INDEX "idx_audit_event_actor_name"`);
  }
}
